/* The pod sandbox's process, like Kubernetes' pause: holds the pod's namespaces, reaps the
 * orphans it adopts as their pid 1, and exits 0 on SIGINT or SIGTERM. Built static by
 * scripts/build-pause-image.py so the image holds this one file. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void down(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    /* waitpid(-1) only waits: it reaps any exited child, it signals nothing. */
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {.sa_handler = down};
    struct sigaction chld = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
    if (sigaction(SIGINT, &term, 0) < 0 || sigaction(SIGTERM, &term, 0) < 0)
        return 1;
    if (sigaction(SIGCHLD, &chld, 0) < 0)
        return 2;
    for (;;)
        pause();
}
