/*
 * schedule.h — when KTWIN's devices publish: six windows, periods, compression.
 *
 * KTWIN's experiment (KTWIN.md §7, setup-devices.sh) runs every device for
 * six windows of 240 s (24 min). In each window a device either stays quiet
 * (period 0) or loops "sleep(period); publish" until the window is used up,
 * the last sleep shortened to what is left, so a window of W seconds with
 * period P > 0 holds ceil(W / P) messages, the last one exactly at the
 * window's end. msg_count (payloads.h) is the index of the window among the
 * device's active windows.
 *
 *   kind          devices/nb  periods (s)          msgs/device/run
 *   air quality   50          10;10;10;10;10;10    144
 *   weather       50          10 x6                144
 *   noise level   50          10 x6                144
 *   crowd flow    50          30;15;5;5;15;30      144
 *   traffic flow  50          10;5;5;5;5;10        240
 *   streetlight   50          0;180;0;0;180;0      4
 *   EV charging   1           80;15;5;5;15;80      134
 *   parking spot  1 (KTWIN's script bug: 20 configured, 1 ran)  80;15;2;2;15;80  278
 *   battery       201 (50 AQ + 50 weather + 50 noise + 50 streetlight + 1 parking)
 *                             0;220;0;0;220;0      4
 *
 * Times here are "model" milliseconds from the start of the run, before
 * compression: with a compression factor F a model time t happens t / F
 * after the start (sim_schedule_real_ns), so a 240 s window lasts 240/F s.
 *
 * Thread: any (pure functions; a cursor belongs to its caller).
 */
#ifndef KT_SIM_SCHEDULE_H
#define KT_SIM_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "payloads.h"

#define SIM_WINDOWS                  6u
#define SIM_WINDOW_MS                240000u
#define SIM_RUN_MS                   (SIM_WINDOWS * SIM_WINDOW_MS)
#define SIM_DEVICES_PER_NEIGHBORHOOD 503u

typedef struct sim_profile {
    uint32_t window_ms[SIM_WINDOWS];
    uint32_t period_ms[SIM_WINDOWS]; /* 0: the device is quiet in that window */
} sim_profile;

/* Where a device is in its run. Zero-initialise ({0}) to start at t = 0. */
typedef struct sim_cursor {
    uint64_t t_ms;     /* model time of the last message, or of the window start */
    uint64_t w_end_ms; /* end of the current active window */
    unsigned window;   /* 0..SIM_WINDOWS; SIM_WINDOWS = done */
    unsigned active;   /* active windows finished so far = the next msg_count */
    bool in_window;
} sim_cursor;

/* The profile of a device type (a static table). */
const sim_profile *sim_schedule_profile(sim_kind kind);

/* How many devices of this kind one neighborhood has (table above). */
unsigned sim_schedule_devices(sim_kind kind);

/*
 * The next message of a device: its model time into *t_ms_out, its
 * msg_count into *msg_count_out and its window (0..5) into *window_out (any
 * of them may be NULL). Returns false when the run is over.
 */
bool sim_schedule_next(const sim_profile *p,
                       sim_cursor *c,
                       uint64_t *t_ms_out,
                       unsigned *msg_count_out,
                       unsigned *window_out);

/* Messages one device of profile p sends at model times <= until_ms (UINT64_MAX: the run). */
uint64_t sim_schedule_count(const sim_profile *p, uint64_t until_ms);

/* Model time t_ms, compressed by factor (> 0), as nanoseconds after the start. */
uint64_t sim_schedule_real_ns(uint64_t t_ms, double factor);

/* The window (0..5) that model time t_ms falls in; 6 past the run. */
unsigned sim_schedule_window_at(uint64_t t_ms);

#endif
