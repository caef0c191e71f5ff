/* cmd_shell.c - placeholder */
#include "cli.h"
int lm_cmd_shell(int argc, char **argv) { (void)argc; (void)argv; return 2; }
