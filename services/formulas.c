/*
 * formulas.c — the smart-city services' arithmetic. See formulas.h.
 *
 * DESIGN (AQI). Breakpoints are kept as integers in the pollutant's own
 * precision (PM2.5 and CO in tenths), and a concentration is truncated to
 * that precision first, as the EPA's Technical Assistance Document requires
 * ("truncate ... PM2.5 to 1 decimal place, CO to 1, O3 to 3 in ppm = whole
 * ppb, PM10 and SO2 to integers"). After truncation every valid value falls
 * inside exactly one row, so no "C < high + step" fudge is needed (KTWIN's
 * bracket test, KTWIN.md §6.1). The index interpolates over the
 * CONCENTRATION bounds of the row (KTWIN used the index bound there).
 *
 * Thread: any. Ownership: nothing kept.
 */
#include "formulas.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- air quality ---------------------------------------------------------------- */

typedef struct aqi_row {
    int32_t c_lo, c_hi; /* concentration, in units of 1/scale */
    int16_t i_lo, i_hi;
} aqi_row;

typedef struct aqi_table {
    const char *name;
    int32_t scale; /* 10: one decimal kept */
    const aqi_row *rows;
    size_t n_rows;
} aqi_table;

/* EPA-454/B-18-007 (Sept 2018), Table 5, "Breakpoints for the AQI". */
static const aqi_row rows_co[] = {
    /* ppm x 10, 8-hour */
    { 0, 44, 0, 50 },       { 45, 94, 51, 100 },    { 95, 124, 101, 150 },  { 125, 154, 151, 200 },
    { 155, 304, 201, 300 }, { 305, 404, 301, 400 }, { 405, 504, 401, 500 },
};
static const aqi_row rows_pm10[] = {
    /* ug/m3, 24-hour */
    { 0, 54, 0, 50 },       { 55, 154, 51, 100 },   { 155, 254, 101, 150 }, { 255, 354, 151, 200 },
    { 355, 424, 201, 300 }, { 425, 504, 301, 400 }, { 505, 604, 401, 500 },
};
static const aqi_row rows_pm25[] = {
    /* ug/m3 x 10, 24-hour (the 2012 NAAQS table in force until 2024) */
    { 0, 120, 0, 50 },        { 121, 354, 51, 100 },    { 355, 554, 101, 150 },
    { 555, 1504, 151, 200 },  { 1505, 2504, 201, 300 }, { 2505, 3504, 301, 400 },
    { 3505, 5004, 401, 500 },
};
static const aqi_row rows_so2[] = {
    /* ppb; 1-hour up to 304, 24-hour above (the table has no 1-hour rows past 304) */
    { 0, 35, 0, 50 },       { 36, 75, 51, 100 },    { 76, 185, 101, 150 },   { 186, 304, 151, 200 },
    { 305, 604, 201, 300 }, { 605, 804, 301, 400 }, { 805, 1004, 401, 500 },
};
static const aqi_row rows_o3[] = {
    /* ppb; 8-hour up to 200 (8-hour values define no AQI above 300) */
    { 0, 54, 0, 50 },
    { 55, 70, 51, 100 },
    { 71, 85, 101, 150 },
    { 86, 105, 151, 200 },
    { 106, 200, 201, 300 },
    /* above 200 ppb the reading is graded as a 1-hour value: 205-404, 405-504, 505-604 */
    { 205, 404, 201, 300 },
    { 405, 504, 301, 400 },
    { 505, 604, 401, 500 },
};

#define ROWS(r) r, sizeof(r) / sizeof((r)[0])
static const aqi_table tables[SC_POLL_COUNT] = {
    [SC_POLL_CO] = { "CO", 10, ROWS(rows_co) },
    [SC_POLL_PM10] = { "PM10", 1, ROWS(rows_pm10) },
    [SC_POLL_PM25] = { "PM25", 10, ROWS(rows_pm25) },
    [SC_POLL_SO2] = { "SO2", 1, ROWS(rows_so2) },
    [SC_POLL_O3] = { "O3", 1, ROWS(rows_o3) },
};

static const char *const level_names[] = {
    "",          "GOOD",           "MODERATE",  "UNHEALTHY_FOR_SENSITIVE_GROUPS",
    "UNHEALTHY", "VERY_UNHEALTHY", "HAZARDOUS",
};

const char *sc_pollutant_name(sc_pollutant p)
{
    if ((int)p < 0 || p >= SC_POLL_COUNT) {
        return "";
    }
    return tables[p].name;
}

const char *sc_aqi_level_name(sc_aqi_level l)
{
    if ((int)l < 0 || (size_t)l >= sizeof level_names / sizeof level_names[0]) {
        return "";
    }
    return level_names[l];
}

sc_aqi_level sc_aqi_level_parse(const char *s)
{
    size_t i;
    if (s == NULL) {
        return SC_AQI_NONE;
    }
    for (i = 1; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return (sc_aqi_level)i;
        }
    }
    return SC_AQI_NONE;
}

sc_aqi_level sc_aqi_level_of_index(int aqi)
{
    if (aqi < 0) {
        return SC_AQI_NONE;
    }
    if (aqi <= 50) {
        return SC_AQI_GOOD;
    }
    if (aqi <= 100) {
        return SC_AQI_MODERATE;
    }
    if (aqi <= 150) {
        return SC_AQI_USG;
    }
    if (aqi <= 200) {
        return SC_AQI_UNHEALTHY;
    }
    if (aqi <= 300) {
        return SC_AQI_VERY_UNHEALTHY;
    }
    return SC_AQI_HAZARDOUS;
}

bool sc_aqi_index(sc_pollutant p, double conc, int *aqi_out)
{
    const aqi_table *t;
    double scaled;
    int64_t c;
    size_t i;
    if ((int)p < 0 || p >= SC_POLL_COUNT || !isfinite(conc) || conc < 0.0) {
        return false;
    }
    t = &tables[p];
    scaled = conc * (double)t->scale;
    if (scaled >= (double)t->rows[t->n_rows - 1].c_hi + 1.0) {
        *aqi_out = SC_AQI_MAX;
        return true;
    }
    /* Truncate; the epsilon keeps 12.1 * 10 = 120.99999999999999 at 121. */
    c = (int64_t)floor(scaled + 1e-6);
    for (i = 0; i < t->n_rows; i++) {
        const aqi_row *r = &t->rows[i];
        if (c < r->c_lo) {
            /* between two rows (O3 201-204 ppb: the 8-hour table ends at 200, the
               1-hour row starts at 205): the upper row's lowest index */
            *aqi_out = r->i_lo;
            return true;
        }
        if (c <= r->c_hi) {
            double idx =
                (double)(r->i_hi - r->i_lo) / (double)(r->c_hi - r->c_lo) * (double)(c - r->c_lo) +
                (double)r->i_lo;
            *aqi_out = (int)floor(idx + 0.5);
            return true;
        }
    }
    *aqi_out = SC_AQI_MAX;
    return true;
}

/* ---- weather ----------------------------------------------------------------------- */

bool sc_dew_point_c(double t_c, double rh_pct, double *out)
{
    const double b = 17.625;
    const double c = 243.04;
    double gamma;
    if (!isfinite(t_c) || !isfinite(rh_pct) || rh_pct <= 0.0 || rh_pct > 100.0 || t_c < -45.0 ||
        t_c > 60.0) {
        return false;
    }
    gamma = log(rh_pct / 100.0) + b * t_c / (c + t_c);
    *out = c * gamma / (b - gamma);
    return true;
}

double sc_heat_index_f(double t_f, double rh_pct)
{
    double t = t_f;
    double rh = rh_pct;
    double hi = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094);
    if ((hi + t) / 2.0 < 80.0) {
        return hi;
    }
    hi = -42.379 + 2.04901523 * t + 10.14333127 * rh - 0.22475541 * t * rh - 0.00683783 * t * t -
         0.05481717 * rh * rh + 0.00122874 * t * t * rh + 0.00085282 * t * rh * rh -
         0.00000199 * t * t * rh * rh;
    if (rh < 13.0 && t >= 80.0 && t <= 112.0) {
        hi -= ((13.0 - rh) / 4.0) * sqrt((17.0 - fabs(t - 95.0)) / 17.0);
    } else if (rh > 85.0 && t >= 80.0 && t <= 87.0) {
        hi += ((rh - 85.0) / 10.0) * ((87.0 - t) / 5.0);
    }
    return hi;
}

bool sc_wind_chill_c(double t_c, double wind_kmh, double *out)
{
    double v16;
    if (!isfinite(t_c) || !isfinite(wind_kmh) || t_c > 10.0 || wind_kmh <= 4.8) {
        return false;
    }
    v16 = pow(wind_kmh, 0.16);
    *out = 13.12 + 0.6215 * t_c - 11.37 * v16 + 0.3965 * t_c * v16;
    return true;
}

double sc_feels_like_c(double t_c, double rh_pct, double wind_ms, sc_feels_kind *kind_out)
{
    double v = 0.0;
    sc_feels_kind kind = SC_FEELS_AIR;
    if (isfinite(wind_ms) && wind_ms >= 0.0 && sc_wind_chill_c(t_c, wind_ms * 3.6, &v)) {
        kind = SC_FEELS_WIND_CHILL;
    } else if (isfinite(rh_pct) && rh_pct >= 0.0 && rh_pct <= 100.0 && isfinite(t_c) &&
               t_c * 9.0 / 5.0 + 32.0 >= 80.0) {
        v = (sc_heat_index_f(t_c * 9.0 / 5.0 + 32.0, rh_pct) - 32.0) * 5.0 / 9.0;
        kind = SC_FEELS_HEAT_INDEX;
    } else {
        v = t_c;
    }
    if (kind_out != NULL) {
        *kind_out = kind;
    }
    return v;
}

sc_tendency sc_pressure_tendency(double prev, double now, double steady_band)
{
    double d = now - prev;
    if (!isfinite(d) || fabs(d) < steady_band) {
        return SC_TENDENCY_STEADY;
    }
    return d > 0.0 ? SC_TENDENCY_RAISING : SC_TENDENCY_FALLING;
}

const char *sc_tendency_name(sc_tendency t)
{
    switch (t) {
    case SC_TENDENCY_RAISING:
        return "raising";
    case SC_TENDENCY_FALLING:
        return "falling";
    case SC_TENDENCY_STEADY:
    default:
        return "steady";
    }
}

/* ---- flows ---------------------------------------------------------------------------- */

static int congested(double speed, double speed_min, double headway, double headway_min)
{
    bool known_speed = isfinite(speed);
    bool known_headway = isfinite(headway);
    if (!known_speed && !known_headway) {
        return -1;
    }
    if ((known_speed && speed < speed_min) || (known_headway && headway < headway_min)) {
        return 1;
    }
    return 0;
}

int sc_crowd_congested(double avg_speed, double avg_headway_s)
{
    return congested(avg_speed, 4.0, avg_headway_s, 2.0);
}

int sc_traffic_congested(double avg_speed, double avg_headway_s)
{
    return congested(avg_speed, 12.0, avg_headway_s, 2.0);
}

/* ---- parking ----------------------------------------------------------------------------- */

int sc_spot_transition(const char *prev, const char *now)
{
    bool was_occupied = prev != NULL && strcmp(prev, "occupied") == 0;
    if (now == NULL) {
        return 0;
    }
    if (strcmp(now, "occupied") == 0) {
        return was_occupied ? 0 : 1;
    }
    if (strcmp(now, "free") == 0) {
        return was_occupied ? -1 : 0;
    }
    return 0;
}

int64_t sc_parking_occupied(int64_t occupied, int64_t total, int64_t entrances, int64_t exits)
{
    int64_t v = occupied + entrances - exits;
    if (total < 0) {
        total = 0;
    }
    if (v < 0) {
        return 0;
    }
    return v > total ? total : v;
}

/* ---- streetlight, battery ----------------------------------------------------------------- */

bool sc_lamp_stuck(int64_t since_ms, int64_t now_ms, int64_t limit_ms)
{
    return now_ms - since_ms > limit_ms;
}

int sc_battery_period_min(double level_pct, double low_pct)
{
    return level_pct < low_pct ? 60 : 15;
}

/* ---- neighborhood ------------------------------------------------------------------------- */

sc_aqi_level sc_worst_recent(const sc_report *reports, size_t n, int64_t now_ms, int64_t expiry_ms)
{
    sc_aqi_level worst = SC_AQI_NONE;
    size_t i;
    for (i = 0; i < n; i++) {
        if (now_ms - reports[i].at_ms <= expiry_ms && reports[i].level > worst) {
            worst = reports[i].level;
        }
    }
    return worst;
}

/* ---- time ------------------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era;
    int64_t yoe;
    int64_t doy;
    int64_t doe;
    y -= m <= 2 ? 1 : 0;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    int64_t era;
    int64_t doe;
    int64_t yoe;
    int64_t doy;
    int64_t mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2 ? 1 : 0);
}

/* n decimal digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int64_t *out)
{
    int64_t v = 0;
    int i;
    for (i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') {
            return false;
        }
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char a, char b)
{
    if (**p != a && **p != b) {
        return false;
    }
    (*p)++;
    return true;
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int dm[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

bool sc_time_parse_ms(const char *s, int64_t *ms_out)
{
    const char *p = s;
    int64_t y, mo, d, h, mi, sec, ms = 0, off_min = 0;
    if (s == NULL) {
        return false;
    }
    if (!digits(&p, 4, &y) || !expect(&p, '-', '-') || !digits(&p, 2, &mo) ||
        !expect(&p, '-', '-') || !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ')) {
        return false;
    }
    p++;
    if (!digits(&p, 2, &h) || !expect(&p, ':', ':') || !digits(&p, 2, &mi) ||
        !expect(&p, ':', ':') || !digits(&p, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        if (n == 0) {
            return false;
        }
        for (; n < 3; n++) {
            ms *= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int64_t oh, om;
        int sign = *p == '-' ? -1 : 1;
        p++;
        if (!digits(&p, 2, &oh) || !expect(&p, ':', ':') || !digits(&p, 2, &om) || oh > 23 ||
            om > 59) {
            return false;
        }
        off_min = sign * (oh * 60 + om);
    } else {
        return false;
    }
    if (*p != '\0') {
        return false;
    }
    *ms_out =
        ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off_min * 60) * 1000 + ms;
    return true;
}

void sc_time_format(int64_t ms, char out[SC_TIME_CAP])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        out[0] = '\0';
        return;
    }
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d,
                     (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                     (int)(rem % 1000));
    if (n != SC_TIME_CAP - 1) {
        out[0] = '\0';
        return;
    }
    memcpy(out, tmp, SC_TIME_CAP);
}
