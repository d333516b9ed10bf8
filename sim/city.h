/*
 * city.h — the smart-city twin graph of KTWIN's paper, at any size.
 *
 * One neighborhood holds 593 TwinInstances (Table 5 of the paper): the
 * neighborhood, 50 city poles and on each pole an air-quality, weather,
 * noise-level, crowd-flow and traffic-flow observer and a streetlight, one
 * EV charging station, one off-street parking with 20 parking spots, and 220
 * battery devices (one per air-quality, weather, noise-level, streetlight
 * and parking-spot twin). One city instance links every neighborhood.
 *
 * Names and relationships follow KTWIN's nb001 graph (twin-graph.txt,
 * KTWIN.md §3), with its glitches fixed: a pole's refStreetlight names the
 * streetlight that exists (-slNNNNN, not -pNNNNN), a parking spot's
 * refdevice has interface and instance the right way round, the city's
 * edges use the ontology's refNeighborhood, and edges to twins nobody
 * created (road segments, device models, parking groups, ...) are left
 * out, so the generated model resolves without errors. Only pole 1 points
 * at the neighborhood's single EV station; the neighborhood points at its
 * off-street parking (refOffStreetParking, in the ontology).
 *
 *   city-001                                       -> refNeighborhood x N
 *   s4city-city-neighborhood-nbK                   -> refOffStreetParking
 *   city-pole-nbK-pPPPPP        -> refNeighborhood, refStreetlight (-slPPPPP),
 *        refAirQualityObserved, refNoiseLevel, refWeather, refCrowdFlow,
 *        refTrafficFlow, refEVChargingStation (pole 1)
 *   ngsi-ld-city-airqualityobserved-nbK-pP   -> refDevice (-aqo-), refWeatherObserved, citypole
 *   ngsi-ld-city-weatherobserved-nbK-pP      -> refDevice (-wo-)
 *   ngsi-ld-city-noiselevelobserved-nbK-pP   -> refDevice (-nlo-), refWeatherObserved
 *   ngsi-ld-city-streetlight-nbK-slP         -> refDevice
 *   ngsi-ld-city-offstreetparkingspot-nbK-ofp0001-sSSSS -> refOffStreetParking, refdevice
 *
 * Thread: any (no shared state).
 */
#ifndef KT_SIM_CITY_H
#define KT_SIM_CITY_H

#include <stddef.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "payloads.h"

#define SIM_CITY_PER_NEIGHBORHOOD  593u
#define SIM_CITY_MAX_NEIGHBORHOODS 99999u
#define SIM_CITY_MAX_SITES         9999u

typedef enum sim_format { SIM_FORMAT_YAML = 0, SIM_FORMAT_JSON = 1 } sim_format;

typedef struct sim_city_opts {
    unsigned n_neighborhoods;  /* 1..SIM_CITY_MAX_NEIGHBORHOODS */
    unsigned n_sites;          /* 0: no site labels; else neighborhood k -> site-(k % n_sites) */
    sim_format format;         /* YAML documents, or one JSON document per line */
    const char *k8s_namespace; /* metadata.namespace: a DNS label, checked by the caller */
} sim_city_opts;

/* "site-NN" of neighborhood k (1-based) into out; "" without sites. */
void sim_city_site_name(const sim_city_opts *o, unsigned k, char *out, size_t cap);

/*
 * Write DIR/instances-0000.<yaml|json> (the city) and one
 * DIR/instances-KKKK.<ext> per neighborhood. DIR must exist. Files are
 * replaced atomically. *n_out (may be NULL) gets the number of instances.
 * KT_EIO with err set when a file cannot be written.
 */
kt_status
sim_city_write_instances(const sim_city_opts *o, const char *dir, size_t *n_out, kt_err *err);

/*
 * Append one neighborhood's instances (k is 1-based) to out, in o->format.
 * Returns the number of instances appended; KT_ETOOBIG in *st past out's cap.
 */
size_t sim_city_neighborhood(const sim_city_opts *o, unsigned k, kt_buf *out, kt_status *st);

/*
 * The instance name of device i (0-based, i < sim_schedule_devices(kind)) of
 * this kind in neighborhood k (1-based), as KTWIN's simulator names it: the
 * <instance> of its topic ktwin/real/<sim_kind_iface(kind)>/<instance>, and a
 * TwinInstance that sim_city_neighborhood writes. Batteries 0..49 power the
 * air-quality sensors (-aqo-), 50..99 weather (-wo-), 100..149 noise (-nlo-),
 * 150..199 the streetlights and 200 the parking spot. Returns out ("" for an
 * index out of range).
 */
const char *sim_city_device_instance(char *out, size_t cap, sim_kind kind, unsigned k, unsigned i);

/*
 * Append the PlacementPolicy "smart-city" as a YAML document: sensing and
 * per-neighborhood services at the edge (offline: required), device
 * batteries prefer the edge, the city-wide aggregate in the cloud.
 */
kt_status sim_city_policy(const sim_city_opts *o, kt_buf *out);

#endif
