/* Entry point for boards and the native executable (the ctypes library has none). */
#include "app.h"
#include "hal.h"

int main(void)
{
    hal_init();
    app_init();
    app_boot_banner();
    for (;;)
        app_poll();
}
