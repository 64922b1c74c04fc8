/* CVE-2019-5736 attacker of tests/tests/e2e_security.rs, compiled statically by the test and
 * run in a container: attack OUT STOPFILE MAXSECS all|runtime [PID...] */
/* Scans /proc until STOPFILE exists or MAXSECS pass. For every process other than itself (all),
 * or only runtime processes (argv0 myrt*, containerd-shim*, runc, crun, or a listed PID)
 * (runtime): readlink /proc/P/exe, open it O_WRONLY, open it O_PATH and reopen
 * /proc/self/fd/N O_WRONLY. A write is only ever tried on a memfd (the same byte back at
 * offset 0): host files are never written. Writes "count N class op result" lines to OUT, then
 * "done", then sleeps. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXKEYS 512
static char *keys[MAXKEYS];
static long counts[MAXKEYS];
static int nkeys;
static unsigned char seen[(4u << 20) / 8], seen_rt[(4u << 20) / 8];
static long npids, nrt;
/* O_PATH fds on runtime copies (memfd, or "/" for a read-only bind), reopened for writing once
 * the execs are over: then nothing executes the copy, so ETXTBSY cannot hide the answer. */
static int saved[8], nsaved;

static void note(const char *cls, const char *op, const char *res) {
    char k[700];
    snprintf(k, sizeof k, "%s %s %s", cls, op, res);
    for (int i = 0; i < nkeys; i++)
        if (!strcmp(keys[i], k)) { counts[i]++; return; }
    if (nkeys < MAXKEYS) { keys[nkeys] = strdup(k); counts[nkeys++] = 1; }
}

static void note_err(const char *cls, const char *op, int e) {
    char r[64];
    snprintf(r, sizeof r, "err:%s", strerrorname_np(e) ? strerrorname_np(e) : "?");
    note(cls, op, r);
}

static void fd_target(int fd, char *buf, size_t n) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(p, buf, n - 1);
    buf[l < 0 ? 0 : l] = 0;
    for (char *c = buf; *c; c++) if (*c == ' ') *c = '_';
}

/* An fd open for writing: try one write only if it is a memfd (the sealed copy). */
static void got_writable(const char *cls, const char *op, int fd) {
    char t[512], r[600];
    fd_target(fd, t, sizeof t);
    snprintf(r, sizeof r, "ok:%s", t);
    note(cls, op, r);
    if (!strncmp(t, "/memfd:", 7)) {
        unsigned char b;
        if (pread(fd, &b, 1, 0) != 1) b = 0x7f;
        if (pwrite(fd, &b, 1, 0) == 1) note(cls, "memfd-write", "ok");
        else note_err(cls, "memfd-write", errno);
    }
    close(fd);
}

static int is_runtime(const char *pid, int argc, char **argv) {
    for (int i = 5; i < argc; i++) if (!strcmp(argv[i], pid)) return 1;
    char p[300], cmd[256];
    snprintf(p, sizeof p, "/proc/%s/cmdline", pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    if (n <= 0) return 0;
    cmd[n] = 0;
    const char *b = strrchr(cmd, '/') ? strrchr(cmd, '/') + 1 : cmd;
    return !strncmp(b, "myrt", 4) || !strncmp(b, "containerd-shim", 15) || !strcmp(b, "runc") ||
           !strcmp(b, "crun");
}

static void probe(const char *pid, const char *cls) {
    char p[300], t[512], r[600];
    snprintf(p, sizeof p, "/proc/%s/exe", pid);
    ssize_t l = readlink(p, t, sizeof t - 1);
    if (l >= 0) {
        t[l] = 0;
        for (char *c = t; *c; c++) if (*c == ' ') *c = '_';
        snprintf(r, sizeof r, "ok:%s", t);
        note(cls, "readlink", r);
    } else {
        note_err(cls, "readlink", errno);
    }
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) got_writable(cls, "open-wronly", fd);
    else note_err(cls, "open-wronly", errno);
    int o = open(p, O_PATH | O_CLOEXEC);
    if (o < 0) { note_err(cls, "open-opath", errno); return; }
    fd_target(o, t, sizeof t);
    snprintf(r, sizeof r, "ok:%s", t);
    note(cls, "open-opath", r);
    if ((!strncmp(t, "/memfd:", 7) || !strcmp(t, "/")) && nsaved < 8) saved[nsaved++] = dup(o);
    char q[64];
    snprintf(q, sizeof q, "/proc/self/fd/%d", o);
    fd = open(q, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) got_writable(cls, "reopen-wronly", fd);
    else note_err(cls, "reopen-wronly", errno);
    close(o);
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: attack OUT STOPFILE MAXSECS all|runtime [PID...]\n"); return 2; }
    int only_rt = !strcmp(argv[4], "runtime");
    char self[32];
    snprintf(self, sizeof self, "%d", getpid());
    time_t end = time(NULL) + atol(argv[3]);
    long iterations = 0;
    while (access(argv[2], F_OK) != 0 && time(NULL) < end) {
        iterations++;
        DIR *d = opendir("/proc");
        if (!d) { perror("opendir /proc"); return 1; }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9' || !strcmp(e->d_name, self)) continue;
            unsigned long n = strtoul(e->d_name, NULL, 10) % (4u << 20);
            int rt = is_runtime(e->d_name, argc, argv);
            if (only_rt && !rt) continue;
            if (!(seen[n / 8] & (1 << n % 8))) { seen[n / 8] |= 1 << n % 8; npids++; }
            if (rt && !(seen_rt[n / 8] & (1 << n % 8))) { seen_rt[n / 8] |= 1 << n % 8; nrt++; }
            probe(e->d_name, rt ? "rt" : "other");
        }
        closedir(d);
    }
    for (int i = 0; i < nsaved; i++) {
        char q[64];
        snprintf(q, sizeof q, "/proc/self/fd/%d", saved[i]);
        int fd = open(q, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) got_writable("rt", "late-reopen-wronly", fd);
        else note_err("rt", "late-reopen-wronly", errno);
        close(saved[i]);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *f = fopen(tmp, "w");
    if (!f) { perror(tmp); return 1; }
    char st[4096] = "";
    FILE *s = fopen("/proc/self/status", "r");
    while (s && fgets(st, sizeof st, s))
        if (!strncmp(st, "CapEff:", 7)) fprintf(f, "capeff %s", st + 8);
    if (s) fclose(s);
    fprintf(f, "iterations %ld\npids %ld\nrt_pids %ld\n", iterations, npids, nrt);
    for (int i = 0; i < nkeys; i++) fprintf(f, "count %ld %s\n", counts[i], keys[i]);
    fprintf(f, "done\n");
    fclose(f);
    rename(tmp, argv[1]);
    for (;;) pause();
}
