/*
 * payloads.h — the MQTT messages of KTWIN's smart-city devices, byte for byte.
 *
 * KTWIN's device simulator (ktwin-smart-cities-devices, devices/golang/cmd/
 * *\/main.go, KTWIN.md §2.3 and §7) builds each message as a Go map and
 * encodes it with json.Marshal, which writes the keys in byte order. The
 * builders here write the same keys, values and order, so a payload from
 * ktwin-sim equals one from KTWIN for the same msg_count and timestamp.
 *
 * msg_count is what KTWIN passes to its builders: the index of the device's
 * current window among its ACTIVE windows (windows with a period > 0), not a
 * per-message counter. Value patterns use FULL_PERIOD 10 and PART_PERIOD 4:
 * msg_count % 10 < 4 gives value A, > 4 value B, == 4 the default value. The
 * battery's measurementFrequency uses 11 and 5 (KTWIN adds part/3 to both).
 * The timestamp is Go's time.RFC3339 of the UTC wall clock, to the second
 * ("2024-06-22T00:50:00Z"); crowd and traffic flow carry it twice, as
 * dateObservedFrom and dateObservedTo.
 *
 * Thread: any (no state).
 */
#ifndef KT_SIM_PAYLOADS_H
#define KT_SIM_PAYLOADS_H

#include <stddef.h>
#include <stdint.h>

/* The nine device types of KTWIN.md §7, in the order of its table. */
typedef enum sim_kind {
    SIM_KIND_AIR_QUALITY = 0,
    SIM_KIND_WEATHER,
    SIM_KIND_NOISE,
    SIM_KIND_CROWD_FLOW,
    SIM_KIND_TRAFFIC_FLOW,
    SIM_KIND_STREETLIGHT,
    SIM_KIND_EV_CHARGING,
    SIM_KIND_PARKING_SPOT,
    SIM_KIND_BATTERY,
    SIM_KIND_COUNT
} sim_kind;

/* Room for any payload this module builds (the air-quality one is ~480 bytes). */
#define SIM_PAYLOAD_CAP 1024u
/* Room for "YYYY-MM-DDTHH:MM:SSZ" plus NUL. */
#define SIM_TS_CAP 21u

/*
 * The TwinInterface the device publishes for: the <iface> of its topic
 * ktwin/real/<iface>/<instance>, e.g. "ngsi-ld-city-device" for a battery.
 */
const char *sim_kind_iface(sim_kind kind);

/* A short name for logs and options: "air-quality", "battery", ... */
const char *sim_kind_name(sim_kind kind);

/*
 * Format wall_ms (ms since the epoch) as Go's time.RFC3339 in UTC, to the
 * second, into out (SIM_TS_CAP bytes). Returns out.
 */
const char *sim_payload_timestamp(char *out, size_t cap, uint64_t wall_ms);

/*
 * Write the payload of a device of this kind for msg_count (see above) and
 * timestamp ts (as sim_payload_timestamp makes it, copied verbatim) into
 * out, NUL-terminated. Returns the payload length, or 0 when it does not fit
 * cap (SIM_PAYLOAD_CAP always fits with a timestamp of SIM_TS_CAP).
 */
size_t sim_payload_build(char *out, size_t cap, sim_kind kind, unsigned msg_count, const char *ts);

#endif
