/* commands.h - subcommands of the `lumadb` command that live outside tools/lumadb.c.
 * Each takes the arguments after its name and returns the process exit status
 * (0 ok, 1 failure, 2 usage error); they print to stdout/stderr.
 * Threading: main thread. Called by: tools/lumadb.c main(). */
#ifndef LM_COMMANDS_H
#define LM_COMMANDS_H

/* lumadb view DIR FIELD [options]: interactive viewer window (docs/VIEWER.md). */
int lm_cmd_view(int argc, char **argv);
/* lumadb snapshot DIR FIELD --out FILE.png [options]: one frame offscreen to PNG. */
int lm_cmd_snapshot(int argc, char **argv);

#endif
