/* The firmware application: protocol handlers over mlp/dataset, and the main loop. */
#ifndef TR_APP_H
#define TR_APP_H

/* Reset all state and register the handlers with proto. Call after hal_init. */
void app_init(void);
/* One main-loop iteration: move received bytes into the ring, run complete frames,
 * wait for input if there was none. */
void app_poll(void);
/* Send the single boot line (terminated by 0x00 so the host sees one noise chunk). */
void app_boot_banner(void);

#endif
