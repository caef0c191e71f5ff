/* cmd_import.c - placeholder */
#include "cli.h"
int lm_cmd_import(int argc, char **argv) { (void)argc; (void)argv; return 2; }
