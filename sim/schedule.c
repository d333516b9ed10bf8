/*
 * schedule.c — KTWIN's device timing (see schedule.h).
 *
 * Integer milliseconds throughout, so long runs do not drift and counts are
 * exact. Thread: any.
 */
#include "schedule.h"

#define W    SIM_WINDOW_MS
#define S(x) ((uint32_t)(x)*1000u)

static const sim_profile profiles[SIM_KIND_COUNT] = {
    [SIM_KIND_AIR_QUALITY] = { { W, W, W, W, W, W }, { S(10), S(10), S(10), S(10), S(10), S(10) } },
    [SIM_KIND_WEATHER] = { { W, W, W, W, W, W }, { S(10), S(10), S(10), S(10), S(10), S(10) } },
    [SIM_KIND_NOISE] = { { W, W, W, W, W, W }, { S(10), S(10), S(10), S(10), S(10), S(10) } },
    [SIM_KIND_CROWD_FLOW] = { { W, W, W, W, W, W }, { S(30), S(15), S(5), S(5), S(15), S(30) } },
    [SIM_KIND_TRAFFIC_FLOW] = { { W, W, W, W, W, W }, { S(10), S(5), S(5), S(5), S(5), S(10) } },
    [SIM_KIND_STREETLIGHT] = { { W, W, W, W, W, W }, { 0, S(180), 0, 0, S(180), 0 } },
    [SIM_KIND_EV_CHARGING] = { { W, W, W, W, W, W }, { S(80), S(15), S(5), S(5), S(15), S(80) } },
    [SIM_KIND_PARKING_SPOT] = { { W, W, W, W, W, W }, { S(80), S(15), S(2), S(2), S(15), S(80) } },
    [SIM_KIND_BATTERY] = { { W, W, W, W, W, W }, { 0, S(220), 0, 0, S(220), 0 } },
};

static const unsigned devices[SIM_KIND_COUNT] = {
    [SIM_KIND_AIR_QUALITY] = 50, [SIM_KIND_WEATHER] = 50,      [SIM_KIND_NOISE] = 50,
    [SIM_KIND_CROWD_FLOW] = 50,  [SIM_KIND_TRAFFIC_FLOW] = 50, [SIM_KIND_STREETLIGHT] = 50,
    [SIM_KIND_EV_CHARGING] = 1,  [SIM_KIND_PARKING_SPOT] = 1,  [SIM_KIND_BATTERY] = 201,
};

const sim_profile *sim_schedule_profile(sim_kind kind)
{
    return (unsigned)kind < SIM_KIND_COUNT ? &profiles[kind] : NULL;
}

unsigned sim_schedule_devices(sim_kind kind)
{
    return (unsigned)kind < SIM_KIND_COUNT ? devices[kind] : 0;
}

bool sim_schedule_next(const sim_profile *p,
                       sim_cursor *c,
                       uint64_t *t_ms_out,
                       unsigned *msg_count_out,
                       unsigned *window_out)
{
    while (c->window < SIM_WINDOWS) {
        uint32_t period = p->period_ms[c->window];
        if (period == 0) {
            c->t_ms += p->window_ms[c->window]; /* quiet: sleep the whole window */
            c->window++;
            continue;
        }
        if (!c->in_window) {
            c->in_window = true;
            c->w_end_ms = c->t_ms + p->window_ms[c->window];
        }
        if (c->t_ms < c->w_end_ms) {
            uint64_t left = c->w_end_ms - c->t_ms;
            c->t_ms += left < period ? left : period;
            if (t_ms_out != NULL) {
                *t_ms_out = c->t_ms;
            }
            if (msg_count_out != NULL) {
                *msg_count_out = c->active;
            }
            if (window_out != NULL) {
                *window_out = c->window;
            }
            return true;
        }
        c->in_window = false;
        c->active++;
        c->window++;
    }
    return false;
}

uint64_t sim_schedule_count(const sim_profile *p, uint64_t until_ms)
{
    sim_cursor c = { 0 };
    uint64_t t = 0, n = 0;
    while (sim_schedule_next(p, &c, &t, NULL, NULL) && t <= until_ms) {
        n++;
    }
    return n;
}

uint64_t sim_schedule_real_ns(uint64_t t_ms, double factor)
{
    return (uint64_t)((double)t_ms * 1e6 / factor);
}

unsigned sim_schedule_window_at(uint64_t t_ms)
{
    uint64_t w = t_ms / SIM_WINDOW_MS;
    return w < SIM_WINDOWS ? (unsigned)w : SIM_WINDOWS;
}
