/* cmd_serve.h - `lumadb serve`: the headless HTTP + WebSocket server.
 * Owns: nothing beyond the call. Called by: tools/lumadb.c main(). */
#ifndef LM_CMD_SERVE_H
#define LM_CMD_SERVE_H

/* argv are the arguments after "serve". Returns the process exit status. */
int lm_cmd_serve(int argc, char **argv);

#endif
