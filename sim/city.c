/*
 * city.c — the smart-city twin graph generator. See city.h.
 *
 * DESIGN: 1,200 neighborhoods are 711,601 instances and about 400 MB of
 * YAML, so documents are written as text straight into a kt_buf (one per
 * output file) instead of through a cJSON tree per instance. Every string
 * written is generated here from [a-z0-9-] or is the namespace, which the
 * caller checks is a DNS label, so nothing needs quoting or escaping.
 */
#include "city.h"

#include <stdio.h>
#include <string.h>

#include "kt/mem.h"

#define NAME_CAP               128
#define POLES_PER_NEIGHBORHOOD 50u
#define SPOTS_PER_NEIGHBORHOOD 20u

/* ---- one document at a time ---------------------------------------------------- */

typedef struct inst_writer {
    kt_buf *out;
    sim_format fmt;
    const char *ns;
    const char *site; /* "" = no label */
    kt_status st;     /* first failure sticks */
    unsigned n_rels;  /* of the open instance */
    size_t count;
} inst_writer;

static void put(inst_writer *w, const char *s, size_t n)
{
    if (w->st == KT_OK) {
        w->st = kt_buf_append(w->out, s, n);
    }
}

static void put_str(inst_writer *w, const char *s)
{
    put(w, s, strlen(s));
}

#define PUT_LIT(w, s) put((w), (s), sizeof(s) - 1)

static void inst_begin(inst_writer *w, const char *name, const char *iface)
{
    w->n_rels = 0;
    w->count++;
    if (w->fmt == SIM_FORMAT_JSON) {
        PUT_LIT(
            w,
            "{\"apiVersion\":\"dtd.ktwin/v0\",\"kind\":\"TwinInstance\",\"metadata\":{\"name\":\"");
        put_str(w, name);
        PUT_LIT(w, "\",\"namespace\":\"");
        put_str(w, w->ns);
        PUT_LIT(w, "\"");
        if (w->site[0] != '\0') {
            PUT_LIT(w, ",\"labels\":{\"ktwin.io/site\":\"");
            put_str(w, w->site);
            PUT_LIT(w, "\"}");
        }
        PUT_LIT(w, "},\"spec\":{\"interface\":\"");
        put_str(w, iface);
        PUT_LIT(w, "\"");
        return;
    }
    PUT_LIT(w, "---\napiVersion: dtd.ktwin/v0\nkind: TwinInstance\nmetadata:\n  name: ");
    put_str(w, name);
    PUT_LIT(w, "\n  namespace: ");
    put_str(w, w->ns);
    PUT_LIT(w, "\n");
    if (w->site[0] != '\0') {
        PUT_LIT(w, "  labels:\n    ktwin.io/site: ");
        put_str(w, w->site);
        PUT_LIT(w, "\n");
    }
    PUT_LIT(w, "spec:\n  interface: ");
    put_str(w, iface);
    PUT_LIT(w, "\n");
}

static void inst_rel(inst_writer *w, const char *name, const char *iface, const char *target)
{
    if (w->fmt == SIM_FORMAT_JSON) {
        if (w->n_rels == 0) {
            PUT_LIT(w, ",\"twinInstanceRelationships\":[{\"name\":\"");
        } else {
            PUT_LIT(w, ",{\"name\":\"");
        }
        put_str(w, name);
        PUT_LIT(w, "\",\"interface\":\"");
        put_str(w, iface);
        PUT_LIT(w, "\",\"instance\":\"");
        put_str(w, target);
        PUT_LIT(w, "\"}");
    } else {
        if (w->n_rels == 0) {
            PUT_LIT(w, "  twinInstanceRelationships:\n");
        }
        PUT_LIT(w, "  - name: ");
        put_str(w, name);
        PUT_LIT(w, "\n    interface: ");
        put_str(w, iface);
        PUT_LIT(w, "\n    instance: ");
        put_str(w, target);
        PUT_LIT(w, "\n");
    }
    w->n_rels++;
}

static void inst_end(inst_writer *w)
{
    if (w->fmt == SIM_FORMAT_JSON) {
        if (w->n_rels > 0) {
            PUT_LIT(w, "]");
        }
        PUT_LIT(w, "}}\n");
    }
}

/* ---- names ------------------------------------------------------------------------ */

/* dst = a + "-" + b [+ "-" + c]; c may be NULL. Everything fits NAME_CAP by construction. */
static const char *join(char *dst, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c != NULL ? strlen(c) : 0;
    KT_ASSERT(la + lb + lc + 3 <= NAME_CAP);
    char *p = dst;
    memcpy(p, a, la);
    p += la;
    *p++ = '-';
    memcpy(p, b, lb);
    p += lb;
    if (c != NULL) {
        *p++ = '-';
        memcpy(p, c, lc);
        p += lc;
    }
    *p = '\0';
    return dst;
}

#define IF_HOOD "s4city-city-neighborhood"
#define IF_CITY "s4city-city-city"
#define IF_POLE "city-pole"
#define IF_AQO  "ngsi-ld-city-airqualityobserved"
#define IF_WO   "ngsi-ld-city-weatherobserved"
#define IF_NLO  "ngsi-ld-city-noiselevelobserved"
#define IF_CFO  "ngsi-ld-city-crowdflowobserved"
#define IF_TFO  "ngsi-ld-city-trafficflowobserved"
#define IF_SL   "ngsi-ld-city-streetlight"
#define IF_EV   "ngsi-ld-city-evchargingstation"
#define IF_OFP  "ngsi-ld-city-offstreetparking"
#define IF_SPOT "ngsi-ld-city-parkingspot"
#define IF_DEV  "ngsi-ld-city-device"
/* KTWIN names parking-spot instances after the kind of parking, not the interface. */
#define SPOT_PREFIX "ngsi-ld-city-offstreetparkingspot"

void sim_city_site_name(const sim_city_opts *o, unsigned k, char *out, size_t cap)
{
    if (o->n_sites == 0) {
        kt_strlcpy(out, "", cap);
        return;
    }
    snprintf(out, cap, "site-%02u", k % o->n_sites);
}

const char *sim_city_device_instance(char *out, size_t cap, sim_kind kind, unsigned k, unsigned i)
{
    /* Pole-mounted devices are numbered by pole (1..50); see city.h for the batteries. */
    static const char *const battery_prefix[3] = { "-aqo", "-wo", "-nlo" };
    unsigned p = i + 1;
    int n = -1;
    switch (kind) {
    case SIM_KIND_AIR_QUALITY:
    case SIM_KIND_WEATHER:
    case SIM_KIND_NOISE:
    case SIM_KIND_CROWD_FLOW:
    case SIM_KIND_TRAFFIC_FLOW:
        if (i < POLES_PER_NEIGHBORHOOD) {
            n = snprintf(out, cap, "%s-nb%03u-p%05u", sim_kind_iface(kind), k, p);
        }
        break;
    case SIM_KIND_STREETLIGHT:
        if (i < POLES_PER_NEIGHBORHOOD) {
            n = snprintf(out, cap, IF_SL "-nb%03u-sl%05u", k, p);
        }
        break;
    case SIM_KIND_EV_CHARGING:
        if (i == 0) {
            n = snprintf(out, cap, IF_EV "-nb%03u-ev0001", k);
        }
        break;
    case SIM_KIND_PARKING_SPOT:
        if (i == 0) {
            n = snprintf(out, cap, SPOT_PREFIX "-nb%03u-ofp0001-s0001", k);
        }
        break;
    case SIM_KIND_BATTERY:
        if (i < 3 * POLES_PER_NEIGHBORHOOD) {
            n = snprintf(out, cap, IF_DEV "%s-nb%03u-p%05u",
                         battery_prefix[i / POLES_PER_NEIGHBORHOOD], k,
                         i % POLES_PER_NEIGHBORHOOD + 1);
        } else if (i < 4 * POLES_PER_NEIGHBORHOOD) {
            n = snprintf(out, cap, IF_DEV "-nb%03u-sl%05u", k, i % POLES_PER_NEIGHBORHOOD + 1);
        } else if (i == 4 * POLES_PER_NEIGHBORHOOD) {
            n = snprintf(out, cap, IF_DEV "-nb%03u-ofp0001-s0001", k);
        }
        break;
    default:
        break;
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
    }
    return out;
}

/* ---- one neighborhood -------------------------------------------------------------- */

/* A device with no edges of its own: the battery twin of a sensor. */
static void device(inst_writer *w, const char *name)
{
    inst_begin(w, name, IF_DEV);
    inst_end(w);
}

size_t sim_city_neighborhood(const sim_city_opts *o, unsigned k, kt_buf *out, kt_status *st)
{
    char site[32], nb[16];
    sim_city_site_name(o, k, site, sizeof site);
    snprintf(nb, sizeof nb, "nb%03u", k);
    inst_writer w = { out, o->format, o->k8s_namespace, site, KT_OK, 0, 0 };
    char hood[NAME_CAP], ofp[NAME_CAP], ev[NAME_CAP], a[NAME_CAP], b[NAME_CAP], c[NAME_CAP];

    join(hood, IF_HOOD, nb, NULL);
    join(ofp, IF_OFP, nb, "ofp0001");
    join(ev, IF_EV, nb, "ev0001");
    inst_begin(&w, hood, IF_HOOD);
    inst_rel(&w, "refOffStreetParking", IF_OFP, ofp);
    inst_end(&w);
    inst_begin(&w, ofp, IF_OFP);
    inst_end(&w);
    inst_begin(&w, ev, IF_EV);
    inst_end(&w);

    for (unsigned p = 1; p <= POLES_PER_NEIGHBORHOOD && w.st == KT_OK; p++) {
        char pid[16], slid[16], id[32];
        snprintf(pid, sizeof pid, "p%05u", p);
        snprintf(slid, sizeof slid, "sl%05u", p);
        snprintf(id, sizeof id, "%s-%s", nb, pid); /* nbK-pP */

        /* The pole and its edges. */
        inst_begin(&w, join(a, IF_POLE, id, NULL), IF_POLE);
        inst_rel(&w, "refNeighborhood", IF_HOOD, hood);
        inst_rel(&w, "refStreetlight", IF_SL, join(b, IF_SL, nb, slid));
        inst_rel(&w, "refAirQualityObserved", IF_AQO, join(b, IF_AQO, id, NULL));
        inst_rel(&w, "refNoiseLevel", IF_NLO, join(b, IF_NLO, id, NULL));
        inst_rel(&w, "refWeather", IF_WO, join(b, IF_WO, id, NULL));
        inst_rel(&w, "refCrowdFlow", IF_CFO, join(b, IF_CFO, id, NULL));
        inst_rel(&w, "refTrafficFlow", IF_TFO, join(b, IF_TFO, id, NULL));
        if (p == 1) {
            inst_rel(&w, "refEVChargingStation", IF_EV, ev);
        }
        inst_end(&w);

        /* Streetlight and its battery. */
        join(c, IF_DEV, nb, slid);
        inst_begin(&w, join(b, IF_SL, nb, slid), IF_SL);
        inst_rel(&w, "refDevice", IF_DEV, c);
        inst_end(&w);
        device(&w, c);

        /* Air quality -> battery, weather, pole. */
        join(c, IF_DEV "-aqo", id, NULL);
        inst_begin(&w, join(b, IF_AQO, id, NULL), IF_AQO);
        inst_rel(&w, "refDevice", IF_DEV, c);
        inst_rel(&w, "refWeatherObserved", IF_WO, join(b, IF_WO, id, NULL));
        inst_rel(&w, "citypole", IF_POLE, a);
        inst_end(&w);
        device(&w, c);

        /* Weather -> battery. */
        join(c, IF_DEV "-wo", id, NULL);
        inst_begin(&w, join(b, IF_WO, id, NULL), IF_WO);
        inst_rel(&w, "refDevice", IF_DEV, c);
        inst_end(&w);
        device(&w, c);

        /* Noise level -> battery, weather. */
        join(c, IF_DEV "-nlo", id, NULL);
        inst_begin(&w, join(b, IF_NLO, id, NULL), IF_NLO);
        inst_rel(&w, "refDevice", IF_DEV, c);
        inst_rel(&w, "refWeatherObserved", IF_WO, join(b, IF_WO, id, NULL));
        inst_end(&w);
        device(&w, c);

        /* Crowd and traffic flow: their road segments are not modelled. */
        inst_begin(&w, join(b, IF_CFO, id, NULL), IF_CFO);
        inst_end(&w);
        inst_begin(&w, join(b, IF_TFO, id, NULL), IF_TFO);
        inst_end(&w);
    }

    for (unsigned s = 1; s <= SPOTS_PER_NEIGHBORHOOD && w.st == KT_OK; s++) {
        char sid[24];
        snprintf(sid, sizeof sid, "ofp0001-s%04u", s);
        join(c, IF_DEV, nb, sid);
        inst_begin(&w, join(b, SPOT_PREFIX, nb, sid), IF_SPOT);
        inst_rel(&w, "refOffStreetParking", IF_OFP, ofp);
        inst_rel(&w, "refdevice", IF_DEV, c); /* the ontology's spelling */
        inst_end(&w);
        device(&w, c);
    }
    if (w.st == KT_OK) {
        KT_ASSERT(w.count == SIM_CITY_PER_NEIGHBORHOOD);
    }
    *st = w.st;
    return w.count;
}

/* ---- files ------------------------------------------------------------------------- */

static kt_status write_city(const sim_city_opts *o, kt_buf *out)
{
    inst_writer w = { out, o->format, o->k8s_namespace, "", KT_OK, 0, 0 };
    char hood[NAME_CAP], nb[16];
    inst_begin(&w, "city-001", IF_CITY); /* city-wide: no site */
    for (unsigned k = 1; k <= o->n_neighborhoods && w.st == KT_OK; k++) {
        snprintf(nb, sizeof nb, "nb%03u", k);
        inst_rel(&w, "refNeighborhood", IF_HOOD, join(hood, IF_HOOD, nb, NULL));
    }
    inst_end(&w);
    return w.st;
}

kt_status
sim_city_write_instances(const sim_city_opts *o, const char *dir, size_t *n_out, kt_err *err)
{
    const char *ext = o->format == SIM_FORMAT_JSON ? "json" : "yaml";
    size_t n = 0;
    kt_buf b;
    kt_buf_init(&b, (size_t)1 << 30);
    char path[4096];
    kt_status st = write_city(o, &b);
    if (st == KT_OK) {
        n++;
        snprintf(path, sizeof path, "%s/instances-0000.%s", dir, ext);
        st = kt_buf_write_file(&b, path, err);
    }
    for (unsigned k = 1; k <= o->n_neighborhoods && st == KT_OK; k++) {
        kt_buf_reset(&b);
        n += sim_city_neighborhood(o, k, &b, &st);
        if (st == KT_OK) {
            snprintf(path, sizeof path, "%s/instances-%04u.%s", dir, k, ext);
            st = kt_buf_write_file(&b, path, err);
        }
    }
    if (st != KT_OK) {
        (void)kt_err_set(err, st, "writing instances to %s", dir);
    }
    kt_buf_fini(&b);
    if (n_out != NULL) {
        *n_out = n;
    }
    return st;
}

/* ---- placement policy ---------------------------------------------------------------- */

kt_status sim_city_policy(const sim_city_opts *o, kt_buf *out)
{
    return kt_buf_printf(
        out,
        "---\n"
        "# Generated by ktwin-sim: where the smart-city services run.\n"
        "apiVersion: edge.ktwin/v0\n"
        "kind: PlacementPolicy\n"
        "metadata:\n"
        "  name: smart-city\n"
        "  namespace: %s\n"
        "spec:\n"
        "  priority: 10\n"
        "  # Instances without a ktwin.io/site label take the site of a related one.\n"
        "  siteFrom:\n"
        "  - relationship: refNeighborhood      # a pole: its neighborhood\n"
        "  - relationship: citypole             # an air-quality sensor: its pole\n"
        "  - relationship: refOffStreetParking  # a parking spot: its parking\n"
        "  - relationship: refOffStreetParking  # a parking: the neighborhood that has it\n"
        "    direction: incoming\n"
        "  - relationship: refStreetlight       # sensors and lights: the pole that has them\n"
        "    direction: incoming\n"
        "  - relationship: refAirQualityObserved\n"
        "    direction: incoming\n"
        "  - relationship: refWeather\n"
        "    direction: incoming\n"
        "  - relationship: refNoiseLevel\n"
        "    direction: incoming\n"
        "  - relationship: refCrowdFlow\n"
        "    direction: incoming\n"
        "  - relationship: refTrafficFlow\n"
        "    direction: incoming\n"
        "  - relationship: refEVChargingStation\n"
        "    direction: incoming\n"
        "  - relationship: refDevice            # a battery: the sensor it powers\n"
        "    direction: incoming\n"
        "  - relationship: refdevice\n"
        "    direction: incoming\n"
        "  rules:\n"
        "  - name: city-wide-in-the-cloud\n"
        "    match:\n"
        "      interfaces: [s4city-city-city]\n"
        "    placement: cloud\n"
        "  - name: neighborhood-at-the-edge\n"
        "    match:\n"
        "      interfaces:\n"
        "      - s4city-city-neighborhood\n"
        "      - city-pole\n"
        "      - ngsi-ld-city-airqualityobserved\n"
        "      - ngsi-ld-city-weatherobserved\n"
        "      - ngsi-ld-city-noiselevelobserved\n"
        "      - ngsi-ld-city-crowdflowobserved\n"
        "      - ngsi-ld-city-trafficflowobserved\n"
        "      - ngsi-ld-city-streetlight\n"
        "      - ngsi-ld-city-evchargingstation\n"
        "      - ngsi-ld-city-offstreetparking\n"
        "      - ngsi-ld-city-parkingspot\n"
        "    placement: edge\n"
        "    sites: [\"site-*\"]\n"
        "    offline: required\n"
        "    overflow: pending\n"
        "  - name: batteries-prefer-the-edge\n"
        "    match:\n"
        "      interfaces: [ngsi-ld-city-device]\n"
        "    placement: prefer-edge\n"
        "    offline: preferred\n"
        "    overflow: cloud\n"
        "  defaultPlacement: cloud\n",
        o->k8s_namespace);
}
