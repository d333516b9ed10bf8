/*
 * devices.h — `ktwin-sim devices`: KTWIN's smart-city devices over MQTT.
 *
 * Runs every device of N neighborhoods (503 each: schedule.h) in one process
 * and publishes each message as KTWIN's device simulator does (payloads.h,
 * schedule.h) to ktwin/real/<iface>/<instance>, where <instance> is a
 * TwinInstance of `ktwin-sim model` (city.h). Neighborhood k (1-based)
 * publishes to the broker of site k % S, the same rule as the model's
 * ktwin.io/site labels (site-(k % S)).
 *
 * It also subscribes to ktwin/virtual/# on every site's broker and measures
 * device-to-device round trips: from a device's publish to the first virtual
 * event for that device's instance after it (the battery service answers
 * each battery report with a virtual event carrying the new measurement
 * frequency).
 *
 * STATS FILE (stable; the runner reads it). One JSON object per line, written
 * whole and flushed once a second of real time while devices run, then one
 * last line with "final": true. A reader should ignore a last line without
 * its newline (still being written). Fields:
 *   "t"           seconds since the devices started (real time)
 *   "window"      the KTWIN window (0..5) the run is in, 6 past the end
 *   "published"   {"<iface>": n, ...} messages the broker took (QoS 1: PUBACK
 *                 received; QoS 0: written to the socket), per interface,
 *                 cumulative; every interface of the run is listed
 *   "scheduled"   {"<iface>": n, ...} messages whose time has come and that
 *                 were handed to paho (or failed), cumulative; at the end
 *                 published + failed == scheduled unless the drain timed out
 *   "failed"      publishes refused by paho or failed by the broker, cumulative
 *   "inflight"    publishes sent and not completed yet
 *   "late_ms_max" worst lateness of a publish behind its schedule, whole run
 *   "late_ms_last" worst lateness since the previous line
 *   "virtual"     virtual events received (ktwin/virtual/#), cumulative
 *   "rtt_ms"      {"n": n, "p50": x, "p90": x, "p99": x} device round trips
 *                 so far (nearest-rank percentiles; 0 when n is 0)
 * The final line adds "final": true, "elapsed_s" (start to end, drain
 * included), "unmatched" (virtual events for no device of ours or with no
 * publish waiting), "dropped" (virtual events lost to a full queue) and
 * "interrupted" (true when SIGINT/SIGTERM ended the run early). With
 * --only-site every figure covers that process's devices only. Virtual
 * events that arrive after the drain are not counted: give a pipeline that
 * lags (sanitizer builds) a longer drain_s.
 *
 * Thread: sim_devices_run owns a private libuv loop on the calling thread
 * and returns when the run is over; paho's threads only hand data to that
 * loop (kt_inbox) or bump atomics. Not re-entrant (one run at a time per
 * process, because of SIGINT/SIGTERM handling).
 */
#ifndef KT_SIM_DEVICES_H
#define KT_SIM_DEVICES_H

#include <stdint.h>

#include "kt/err.h"
#include "payloads.h"

#define SIM_DEVICES_MAX_SITES 9999u

typedef struct sim_devices_opts {
    unsigned n_neighborhoods;   /* >= 1 */
    unsigned n_sites;           /* >= 1; neighborhood k publishes to site k % n_sites */
    const char *const *brokers; /* n_sites broker URLs (tcp://host:port), index = site; */
                                /* with only_site >= 0 only that one is read */
    double compress;            /* time-compression factor > 0; 1 = KTWIN's 24 min */
    int qos;                    /* 0 or 1 */
    double duration_s;          /* stop publishing after this many real seconds; 0: full run */
    const char *stats_path;     /* stats file (above), or NULL */
    unsigned conns_per_site;    /* paho connections per site, >= 1 (devices round-robin) */
    unsigned max_inflight;      /* per connection, >= 1: sends not completed yet */
    double connect_timeout_s;   /* every site must be connected within this, > 0 */
    double drain_s;             /* after the last publish: wait for completions and replies */
    const char
        *client_id_prefix; /* MQTT client ids are <prefix>-<site>-<conn>; NULL: ktwin-sim-<pid> */
    /* -1: every site. Else run only the neighborhoods of this site (k % n_sites == only_site)
     * and connect only to its broker, so one process per site can use a core each (paho has
     * one send thread per process). */
    int only_site;
    /* 0 (default): every device starts at once, so messages of a kind come in bursts of
     * every neighborhood's devices. Else the devices of one kind in one neighborhood (one
     * KTWIN container: its devices started together, the containers seconds apart) start at
     * their own offset in [0, spread_s) model seconds, repeatable; counts per run are
     * unchanged. At most 240. */
    double spread_s;
} sim_devices_opts;

/*
 * Defaults: compress 1, qos 1, 1 connection per site, 200 in flight, 15 s
 * connect, 5 s drain, every site.
 */
void sim_devices_opts_init(sim_devices_opts *o);

typedef struct sim_devices_result {
    uint64_t published[SIM_KIND_COUNT];
    uint64_t scheduled[SIM_KIND_COUNT];
    uint64_t failed;
    uint64_t virtual_rx;
    uint64_t unmatched;
    uint64_t dropped;
    uint64_t rtt_n;
    double rtt_p50_ms, rtt_p90_ms, rtt_p99_ms;
    double late_ms_max;
    double elapsed_s;
    int interrupted; /* SIGINT/SIGTERM ended the run early */
} sim_devices_result;

/*
 * Run the devices until the schedule (or duration_s) is over, drain, and
 * fill *out (may be NULL). Returns KT_OK when the run completed (publish
 * failures are counted, not errors); KT_EINVAL for bad options; KT_ETIMEDOUT
 * when a site's broker did not accept a connection and subscription within
 * connect_timeout_s (err names the site and URL); KT_EIO when the stats
 * file cannot be written; KT_EDEP for a paho or libuv failure.
 * Thread: the caller's (see above).
 */
kt_status sim_devices_run(const sim_devices_opts *o, sim_devices_result *out, kt_err *err);

#endif
