/*
 * standalone_main.c — the smart-city services as a STANDALONE HTTP twin
 * service (ktwin-smartcity-service): the same plugin code as smartcity.so,
 * served by libktwin's HTTP mode (sdk/include/ktwin_http.h), the way KTWIN
 * runs its Knative services. Configure it with KTWIN_BROKER,
 * KTWIN_EVENT_STORE and KTWIN_GRAPH_URL (e.g. all pointing at an agent) and
 * --port; --interface limits what it serves (default: all ten).
 *
 * Thread: main; see ktwin_http.h. Ownership: nothing of its own.
 */
#include "ktwin.h"
#include "ktwin_http.h"

/* Defined in smartcity.c. */
const ktwin_plugin *ktwin_plugin_v1(void);

int main(int argc, char **argv)
{
    return ktwin_http_main(ktwin_plugin_v1(), argc, argv);
}
