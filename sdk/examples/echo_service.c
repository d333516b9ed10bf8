/*
 * echo_service.c — the echo plugin (echo_plugin.c, unchanged) as a
 * STANDALONE HTTP twin service: this file is the whole difference between
 * the two ways of running it.
 *
 *   in-process: cc -shared -fPIC -I sdk/include echo_plugin.c -o echo_plugin.so
 *               (the agent loads it: services.specs "city-pole=/path/echo_plugin.so")
 *   standalone: cc -I sdk/include echo_plugin.c echo_service.c -lktwin ... -o echo-service
 *               KTWIN_BROKER=... ./echo-service --port 8081
 *
 * Thread: main; see ktwin_http.h. Ownership: nothing of its own.
 */
#include "ktwin.h"
#include "ktwin_http.h"

/* Defined in echo_plugin.c. */
const ktwin_plugin *ktwin_plugin_v1(void);

int main(int argc, char **argv)
{
    return ktwin_http_main(ktwin_plugin_v1(), argc, argv);
}
