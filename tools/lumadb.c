/* lumadb.c - the `lumadb` command: subcommand dispatch. */
#include "lumadb.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: lumadb <command> [args]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "lumadb: unknown command '%s'\n", argv[1]);
    return 2;
}
