/* cmd_export.c - placeholder */
#include "cli.h"
int lm_cmd_export(int argc, char **argv) { (void)argc; (void)argv; return 2; }
