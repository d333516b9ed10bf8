/*
 * ontology.h — the smart-city TwinInterfaces as KTWIN deployed them.
 *
 * Converts the DTDL ontology (data/smartcity-ontology/Ontology, 63
 * interfaces) with model/dtdl.h, then adds what KTWIN's deployment had on
 * top of the DTDL files (KTWIN.md §6.0 and §1.6):
 *  - relationships the deployed graph uses but the DTDL lacks:
 *    city-pole.refNeighborhood, city-pole.refTrafficFlow,
 *    ngsi-ld-city-airqualityobserved.citypole, and
 *    ngsi-ld-city-noiselevelobserved.refWeatherObserved (the DTDL spells it
 *    refWeatherObserverd; the graph uses the correct spelling);
 *  - a service on the 10 interfaces that ran one in the experiments, with
 *    the per-pod requests measured there (100m CPU, city-pole 300m; memory
 *    100Mi air-quality/crowd-flow/traffic-flow/weather, 64Mi device/
 *    neighborhood/streetlight/offstreetparking/parkingspot, 228Mi
 *    city-pole) and KTWIN's CLI autoscaling defaults;
 *  - eventStore flags: real events persisted where no service stores them
 *    (noise level, EV charging), virtual events of devices (the battery
 *    commands sent back to them).
 *
 * Thread: one owner (the caller's).
 */
#ifndef KT_SIM_ONTOLOGY_H
#define KT_SIM_ONTOLOGY_H

#include <stddef.h>

#include "kt/buf.h"
#include "kt/err.h"
#include "model/diag.h"

/*
 * Convert the DTDL under dir and append every interface, with the
 * additions, to out as YAML documents (name order of the converter).
 * Problems in the DTDL go to diag; KT_EINVAL when it got an error (nothing
 * appended then), KT_EIO when dir cannot be read, KT_ETOOBIG past out's cap.
 * *n_out (may be NULL) gets the number of interfaces written.
 */
kt_status sim_ontology_write(const char *dir,
                             const char *k8s_namespace,
                             kt_buf *out,
                             size_t *n_out,
                             model_diag *diag,
                             kt_err *err);

#endif
