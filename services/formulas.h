/*
 * services/formulas.h — the arithmetic of the smart-city twin services, as
 * pure functions: no I/O, no allocation, no clock, no ktwin.h. Each one is
 * unit-tested against published reference values (tests/unit/services/
 * test_formulas.c) and documented in docs/services.md.
 *
 *   AQI        US EPA Air Quality Index, piecewise-linear over the
 *              concentration breakpoints of EPA-454/B-18-007 (Technical
 *              Assistance Document for the Reporting of Daily Air Quality,
 *              September 2018; the table of 40 CFR 58 App. G as of 2018).
 *   dew point  Magnus formula with Alduchov & Eskridge (1996) coefficients.
 *   feels-like NWS heat index (Steadman simple formula, Rothfusz regression
 *              and the two NWS adjustments) above 80 °F; NWS/MSC 2001 wind
 *              chill at or below 10 °C with wind above 4.8 km/h; else the
 *              air temperature.
 *   others     pressure tendency, congestion, parking counts, lamp and
 *              battery rules, the neighborhood's worst recent level, and
 *              RFC 3339 time parsing/formatting (plugins link no host
 *              library, so they cannot use model_time_parse).
 *
 * Prefix sc_ ("smart city"). Thread: any (no state). Ownership: nothing is
 * kept; strings returned are static.
 */
#ifndef KT_SERVICES_FORMULAS_H
#define KT_SERVICES_FORMULAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- air quality ---------------------------------------------------------------- */

/* The pollutants KTWIN grades, in KTWIN's order (its field prefixes). */
typedef enum sc_pollutant {
    SC_POLL_CO = 0, /* carbon monoxide, ppm, 8-hour; truncated to 0.1 */
    SC_POLL_PM10,   /* particles <= 10 um, ug/m3, 24-hour; truncated to 1 */
    SC_POLL_PM25,   /* particles <= 2.5 um, ug/m3, 24-hour; truncated to 0.1 */
    SC_POLL_SO2,    /* sulfur dioxide, ppb, 1-hour (24-hour above 304 ppb); truncated to 1 */
    SC_POLL_O3,     /* ozone, ppb, 8-hour (1-hour above 200 ppb); truncated to 1 */
    SC_POLL_COUNT
} sc_pollutant;

/* AQI categories, in increasing severity (the numeric order is the rank). */
typedef enum sc_aqi_level {
    SC_AQI_NONE = 0, /* no valid reading */
    SC_AQI_GOOD,
    SC_AQI_MODERATE,
    SC_AQI_USG, /* unhealthy for sensitive groups */
    SC_AQI_UNHEALTHY,
    SC_AQI_VERY_UNHEALTHY,
    SC_AQI_HAZARDOUS
} sc_aqi_level;

/* Highest index the scale defines; readings above the table report this. */
#define SC_AQI_MAX 500

/* KTWIN's name of a pollutant: "CO", "PM10", "PM25", "SO2", "O3". */
const char *sc_pollutant_name(sc_pollutant p);

/* KTWIN's category string ("GOOD" .. "HAZARDOUS"); "" for SC_AQI_NONE. */
const char *sc_aqi_level_name(sc_aqi_level l);

/* The category of a string (exact, as sc_aqi_level_name writes it); SC_AQI_NONE if unknown. */
sc_aqi_level sc_aqi_level_parse(const char *s);

/* The category of an index value 0..500 (EPA bands 0-50, 51-100, ...); NONE below 0. */
sc_aqi_level sc_aqi_level_of_index(int aqi);

/*
 * The AQI of one concentration: truncate it to the pollutant's precision,
 * find the breakpoint row with C_lo <= C <= C_hi and compute
 * I = (I_hi - I_lo) / (C_hi - C_lo) * (C - C_lo) + I_lo, rounded to the
 * nearest integer. Concentrations above the table give SC_AQI_MAX.
 * Returns false (and leaves *aqi_out) for a negative, NaN or infinite C.
 */
bool sc_aqi_index(sc_pollutant p, double conc, int *aqi_out);

/* ---- weather ----------------------------------------------------------------------- */

/*
 * Dew point (deg C) of air at t_c deg C and relative humidity rh_pct, by the
 * Magnus formula gamma = ln(RH/100) + b*T/(c+T), Td = c*gamma/(b-gamma),
 * b = 17.625, c = 243.04 deg C (Alduchov & Eskridge 1996; within 0.35 deg C
 * over -40..50 deg C). Returns false for RH outside (0, 100] or T outside -45..60.
 */
bool sc_dew_point_c(double t_c, double rh_pct, double *out);

/*
 * NWS heat index (deg F) as the NWS computes it (WPC "The Heat Index
 * Equation"): Steadman's simple formula 0.5*(T + 61 + (T-68)*1.2 + RH*0.094);
 * when its mean with T is 80 F or more, the Rothfusz regression, minus
 * ((13-RH)/4)*sqrt((17-|T-95|)/17) when RH < 13 % and 80 <= T <= 112, plus
 * ((RH-85)/10)*((87-T)/5) when RH > 85 % and 80 <= T <= 87.
 */
double sc_heat_index_f(double t_f, double rh_pct);

/*
 * Wind chill (deg C), NWS/MSC 2001: 13.12 + 0.6215 T - 11.37 V^0.16 +
 * 0.3965 T V^0.16 (T deg C, V km/h at 10 m). Defined for T <= 10 deg C and
 * V > 4.8 km/h: returns false outside that range.
 */
bool sc_wind_chill_c(double t_c, double wind_kmh, double *out);

typedef enum sc_feels_kind {
    SC_FEELS_AIR = 0, /* neither index applies: the air temperature */
    SC_FEELS_WIND_CHILL,
    SC_FEELS_HEAT_INDEX
} sc_feels_kind;

/*
 * Feels-like temperature (deg C): the wind chill when it is defined (needs
 * wind_ms), else the heat index when T >= 80 F (26.67 deg C; needs rh_pct),
 * else t_c. Pass NAN for an unknown rh_pct or wind_ms. *kind_out (may be
 * NULL) tells which one applied.
 */
double sc_feels_like_c(double t_c, double rh_pct, double wind_ms, sc_feels_kind *kind_out);

typedef enum sc_tendency {
    SC_TENDENCY_STEADY = 0,
    SC_TENDENCY_RAISING,
    SC_TENDENCY_FALLING
} sc_tendency;

/* Pressure tendency of prev -> now: steady when |now - prev| < steady_band (same unit). */
sc_tendency sc_pressure_tendency(double prev, double now, double steady_band);

/* The NGSI-LD WeatherObserved value: "raising", "falling", "steady". */
const char *sc_tendency_name(sc_tendency t);

/* ---- flows ---------------------------------------------------------------------------- */

/*
 * KTWIN's congestion rules (KTWIN.md §6.5): a crowd is congested when its
 * average speed is under 4 or its headway under 2 s; traffic when the average
 * vehicle speed is under 12 or the headway under 2 s. A NAN argument is
 * unknown and does not count (KTWIN counts a missing field as 0). Returns
 * 1 congested, 0 not, -1 when both are unknown.
 */
int sc_crowd_congested(double avg_speed, double avg_headway_s);
int sc_traffic_congested(double avg_speed, double avg_headway_s);

/* ---- parking ----------------------------------------------------------------------------- */

/*
 * The change a spot's new status means for its parking: +1 (a vehicle
 * entered: free/unknown -> occupied), -1 (left: occupied -> free), 0 (no
 * change, or a status other than "free"/"occupied"). prev may be NULL or ""
 * (no stored state: taken as free).
 */
int sc_spot_transition(const char *prev, const char *now);

/* occupied + entrances - exits, clamped to [0, total] (total >= 0). */
int64_t sc_parking_occupied(int64_t occupied, int64_t total, int64_t entrances, int64_t exits);

/* ---- streetlight, battery ----------------------------------------------------------------- */

/* true when the lamp has kept one power state for longer than limit_ms (now - since > limit). */
bool sc_lamp_stuck(int64_t since_ms, int64_t now_ms, int64_t limit_ms);

/* Measurement period (minutes) for a battery level in percent: 60 below low_pct, else 15. */
int sc_battery_period_min(double level_pct, double low_pct);

/* ---- neighborhood ------------------------------------------------------------------------- */

typedef struct sc_report {
    sc_aqi_level level;
    int64_t at_ms; /* when it was reported */
} sc_report;

/*
 * The worst level among the reports that are not expired (now - at <=
 * expiry_ms; reports from the future count as fresh). SC_AQI_NONE when none.
 */
sc_aqi_level sc_worst_recent(const sc_report *reports, size_t n, int64_t now_ms, int64_t expiry_ms);

/* ---- time ------------------------------------------------------------------------------------ */

/* Buffer size for sc_time_format: "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL. */
#define SC_TIME_CAP 25

/*
 * Parse an RFC 3339 date-time YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
 * ('t'/'z' and a space for 'T' accepted) to ms since the epoch (fraction
 * truncated to ms). Checks field ranges (month days, leap years, hours
 * 0..23, seconds 0..60). Returns false on anything else. s is NUL-terminated.
 */
bool sc_time_parse_ms(const char *s, int64_t *ms_out);

/* Format ms since the epoch as UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" (years 0..9999; else ""). */
void sc_time_format(int64_t ms, char out[SC_TIME_CAP]);

#endif
