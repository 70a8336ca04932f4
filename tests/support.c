/*
 * The integration test harness (see support.h).
 *
 * The product's lq_amqp module publishes the test commands and reads the
 * dead-letter queue.  What it does not offer is done here with rabbitmq-c
 * directly, on connections of the harness's own: reading a delivery's
 * correlation_id (lq_delivery has no such field), so result listeners
 * consume on connections of their own; publishing with a custom header
 * (lq_publish has no headers); and what only tests do to a broker: purge
 * a queue, delete queues and exchanges.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <cjson/cJSON.h>

#include "ledgerq/error.h"
#include "support.h"

extern char **environ;

#define RUN_TIMEOUT_S  60
#define STOP_TIMEOUT_S 60
#define LOG_TAIL_LINES 40

struct lqt_worker {
    lqt_ns *ns;
    pid_t pid;
    char log_path[512];
};

struct lqt_listener {
    lqt_ns *ns;
    amqp_connection_state_t conn; /* NULL for a durable listener until it collects */
    bool durable;
    char queue[256];
    lqt_event *events;
    size_t n, cap;
};

static amqp_connection_state_t raw_open(char *err, size_t err_len);
static void raw_close(amqp_connection_state_t conn);
static bool raw_delete(const char *const *queues, const char *const *exchanges, char *err,
                       size_t err_len);

/* The runner process (the parent of Check's forked test children). */
static pid_t runner_pid;
/* Namespaces created by this process, to make names unique. */
static int ns_counter;

/* ------------------------------------------------------------ small things */

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static const char *amqp_url(void)
{
    return getenv("LEDGERQ_TEST_AMQP_URL");
}

static const char *admin_url(void)
{
    return getenv("LEDGERQ_TEST_DATABASE_URL");
}

static const char *log_dir(void)
{
    return env_or("LEDGERQ_TEST_LOG_DIR", "/tmp");
}

/* Set by lqt_use_binary(); NULL: LEDGERQ_BIN. */
static const char *binary_override;

void lqt_use_binary(const char *path)
{
    binary_override = path;
}

static const char *ledgerq_bin(void)
{
    return binary_override ? binary_override : getenv("LEDGERQ_BIN");
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_msg(p != NULL, "out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    ck_assert_msg(p != NULL, "out of memory");
    return p;
}

char *lqt_strndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

int64_t lqt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lqt_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void copy_bytes(char *dst, size_t dst_len, amqp_bytes_t b)
{
    size_t n = b.len < dst_len - 1 ? b.len : dst_len - 1;
    if (n)
        memcpy(dst, b.bytes, n);
    dst[n] = '\0';
}

bool lqt_one_line(const char *s)
{
    const char *nl = strchr(s, '\n');

    if (s[0] == '\0' || s[0] == '\n' || strchr(s, '\r'))
        return false;
    return nl == NULL || nl[1] == '\0';
}

bool lqt_parse_utc(const char *s, time_t *ret)
{
    struct tm tm;
    const char *p;

    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL || strlen(s) < 20 || s[4] != '-' || s[10] != 'T')
        return false;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0)
        return false;
    *ret = timegm(&tm);
    return true;
}

bool lqt_parse_utc_us(const char *s, int64_t *ret_us)
{
    const char *dot = strchr(s, '.');
    time_t t;
    int64_t us = 0, scale = 100000;

    if (!lqt_parse_utc(s, &t))
        return false;
    for (const char *p = dot ? dot + 1 : ""; *p >= '0' && *p <= '9'; p++, scale /= 10)
        us += (*p - '0') * scale;
    *ret_us = (int64_t)t * 1000000 + us;
    return true;
}

int64_t lqt_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ connections */

/*
 * Connect to the broker as the product does (lq_amqp_connect_config() with
 * only the URL set: LEDGERQ_TEST_AMQP_URL is plain amqp://).  Usable
 * outside a test.
 */
static int amqp_open(lq_amqp **ret, char *err, size_t err_len)
{
    lq_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.amqp_url = (char *)amqp_url();
    return lq_amqp_connect_config(&cfg, 0, ret, err, err_len);
}

lq_amqp *lqt_amqp_connect(void)
{
    lq_amqp *c = NULL;
    char err[512];

    ck_assert_msg(amqp_open(&c, err, sizeof(err)) == LQ_OK,
                  "could not connect to LEDGERQ_TEST_AMQP_URL: %s", err);
    return c;
}

/* ------------------------------------------------------------ the run */

/* Exit 77 with a line saying why when the test stack is not configured. */
static void env_or_skip(void)
{
    if (amqp_url() == NULL || !*amqp_url() || admin_url() == NULL || !*admin_url()) {
        printf("skipped: LEDGERQ_TEST_AMQP_URL and LEDGERQ_TEST_DATABASE_URL are not both set "
               "(deploy/local/dev.sh test starts a stack and sets them)\n");
        exit(77);
    }
    if (ledgerq_bin() == NULL || access(ledgerq_bin(), X_OK) != 0) {
        printf("LEDGERQ_BIN must name the ledgerq binary (tests/meson.build sets it)\n");
        exit(1);
    }
    if (strncmp(amqp_url(), "amqp://", 7) != 0) {
        printf("the harness speaks plain amqp:// only, not \"%.8s...\"\n", amqp_url());
        exit(1);
    }
}

/* Before the run: remember the runner for sweep(). */
static void init(void)
{
    runner_pid = getpid();
    mkdir(log_dir(), 0755);
}

static void names_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/lqt-%d.names", log_dir(), (int)runner_pid);
}

/* Append one line to the runner's record of namespaces. */
static void names_record(const char *line)
{
    char path[512];
    int fd;

    names_path(path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, strlen(line)) < 0)
        perror("lqt: could not record a namespace");
    close(fd);
}

static PGconn *admin_connect(void)
{
    PGconn *c = PQconnectdb(admin_url());

    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        ck_abort_msg("could not connect to LEDGERQ_TEST_DATABASE_URL: %s", msg);
    }
    return c;
}

/* DROP DATABASE name WITH (FORCE); false with a message on stderr when it failed. */
static bool drop_database(PGconn *admin, const char *name)
{
    char *ident = PQescapeIdentifier(admin, name, strlen(name));
    char sql[256];
    PGresult *res;
    bool ok;

    if (ident == NULL)
        return false;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
    PQfreemem(ident);
    res = PQexec(admin, sql);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "lqt: could not drop database %s: %s", name, PQerrorMessage(admin));
    PQclear(res);
    return ok;
}

/*
 * Delete a namespace's broker objects (exchange, queue, results exchange,
 * dead-letter exchange, dead-letter queue); false with a line on stderr
 * when it could not.  Usable outside a test.
 */
static bool delete_names(const char *const names[5])
{
    const char *const queues[] = {names[1], names[4], NULL};
    const char *const exchanges[] = {names[0], names[2], names[3], NULL};
    char err[512];

    if (raw_delete(queues, exchanges, err, sizeof(err)))
        return true;
    fprintf(stderr, "lqt: could not delete the broker objects of %s: %s\n", names[1], err);
    return false;
}

/* After the run: remove what failed test cases left behind. */
static void sweep(void)
{
    char path[512], line[1024];
    char(*created)[6][128] = NULL;
    size_t n = 0, cap = 0;
    FILE *f;

    names_path(path, sizeof(path));
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f)) {
        char kind, w[6][128];
        if (line[0] == '+' && sscanf(line, "%c %127s %127s %127s %127s %127s %127s", &kind, w[0],
                                     w[1], w[2], w[3], w[4], w[5]) == 7) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                created = realloc(created, cap * sizeof(*created));
                if (created == NULL)
                    break;
            }
            memcpy(created[n++], w, sizeof(w));
        } else if (line[0] == '*' && sscanf(line, "%c %127s %127s", &kind, w[0], w[1]) == 3) {
            /* A durable queue of a namespace: w[0] its database, w[1] the queue. */
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                created = realloc(created, cap * sizeof(*created));
                if (created == NULL)
                    break;
            }
            memset(created[n], 0, sizeof(created[n]));
            snprintf(created[n][0], sizeof(created[n][0]), "*%.126s", w[0]);
            snprintf(created[n][1], sizeof(created[n][1]), "%s", w[1]);
            n++;
        } else if (line[0] == '-' && sscanf(line, "%c %127s", &kind, w[0]) == 2) {
            for (size_t i = 0; i < n; i++) {
                if (strcmp(created[i][0], w[0]) == 0 ||
                    (created[i][0][0] == '*' && strcmp(created[i][0] + 1, w[0]) == 0))
                    created[i][0][0] = '\0';
            }
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        char err[512];
        PGconn *admin;
        const char *names[5];

        if (created[i][0][0] == '\0')
            continue;
        if (created[i][0][0] == '*') {
            const char *const queue[] = {created[i][1], NULL};
            if (!raw_delete(queue, NULL, err, sizeof(err)))
                fprintf(stderr, "lqt: could not delete queue %s: %s\n", created[i][1], err);
            continue;
        }
        fprintf(stderr, "lqt: removing namespace %s left behind by a failed test\n", created[i][0]);
        for (int k = 0; k < 5; k++)
            names[k] = created[i][k + 1];
        delete_names(names);
        admin = PQconnectdb(admin_url());
        if (PQstatus(admin) == CONNECTION_OK)
            drop_database(admin, created[i][0]);
        PQfinish(admin);
    }
    free(created);
    unlink(path);
}

/* ------------------------------------------------------------ namespaces */

void lqt_conninfo_add(char *buf, size_t len, const char *key, const char *value)
{
    size_t used = strlen(buf);

    used += (size_t)snprintf(buf + used, len - used, "%s%s='", used ? " " : "", key);
    for (const char *p = value; *p && used + 3 < len; p++) {
        if (*p == '\\' || *p == '\'')
            buf[used++] = '\\';
        buf[used++] = *p;
    }
    snprintf(buf + used, len - used, "'");
}

/* The admin URL (URI or conninfo) with another database name, as conninfo. */
static char *db_url_for(const char *db_name)
{
    char *errmsg = NULL, buf[2048] = "";
    PQconninfoOption *opts = PQconninfoParse(admin_url(), &errmsg);

    ck_assert_msg(opts != NULL, "LEDGERQ_TEST_DATABASE_URL does not parse: %s",
                  errmsg ? errmsg : "out of memory");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && *o->val && strcmp(o->keyword, "dbname") != 0)
            lqt_conninfo_add(buf, sizeof(buf), o->keyword, o->val);
    }
    lqt_conninfo_add(buf, sizeof(buf), "dbname", db_name);
    PQconninfoFree(opts);
    return xstrdup(buf);
}

lqt_ns *lqt_ns_create(void)
{
    return lqt_ns_create_env(NULL);
}

lqt_ns *lqt_ns_create_env(const char *const *env)
{
    lqt_ns *ns = calloc(1, sizeof(*ns));
    size_t n_env = 0;
    char err[512], line[1024], sql[256], *ident;
    PGconn *admin;
    PGresult *res;
    int n = ++ns_counter;

    ck_assert_msg(ns != NULL, "out of memory");
    while (env && env[n_env])
        n_env++;
    ns->env = xmalloc((n_env + 1) * sizeof(*ns->env));
    for (size_t i = 0; i < n_env; i++)
        ns->env[i] = xstrdup(env[i]);
    ns->env[n_env] = NULL;
    if (runner_pid == 0)
        runner_pid = getppid();
    snprintf(ns->prefix, sizeof(ns->prefix), "t%d.%d.", (int)getpid(), n);
    snprintf(ns->db_name, sizeof(ns->db_name), "lqt_%d_%d_%d", (int)runner_pid, (int)getpid(), n);
    snprintf(ns->exchange, sizeof(ns->exchange), "%spayments", ns->prefix);
    snprintf(ns->queue, sizeof(ns->queue), "%spayments.process", ns->prefix);
    snprintf(ns->results_exchange, sizeof(ns->results_exchange), "%spayments.results", ns->prefix);
    snprintf(ns->dlx, sizeof(ns->dlx), "%spayments.dlx", ns->prefix);
    snprintf(ns->dlq, sizeof(ns->dlq), "%spayments.dead", ns->prefix);
    snprintf(line, sizeof(line), "+ %s %s %s %s %s %s\n", ns->db_name, ns->exchange, ns->queue,
             ns->results_exchange, ns->dlx, ns->dlq);
    names_record(line);

    admin = admin_connect();
    ident = PQescapeIdentifier(admin, ns->db_name, strlen(ns->db_name));
    ck_assert_msg(ident != NULL, "could not quote %s", ns->db_name);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
    PQfreemem(ident);
    res = PQexec(admin, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, sizeof(err), "%s", PQerrorMessage(admin));
        PQclear(res);
        PQfinish(admin);
        ck_abort_msg("could not create database %s: %s", ns->db_name, err);
    }
    PQclear(res);
    PQfinish(admin);

    ns->db_url = db_url_for(ns->db_name);
    ns->db = PQconnectdb(ns->db_url);
    ck_assert_msg(PQstatus(ns->db) == CONNECTION_OK, "could not connect to %s: %s", ns->db_name,
                  PQerrorMessage(ns->db));
    ns->amqp = lqt_amqp_connect();

    lqt_run_ok(ns, "migrate");
    lqt_run_ok(ns, "topology");
    return ns;
}

void lqt_ns_reconnect(lqt_ns *ns)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    char err[512] = "";

    ns->amqp = lq_amqp_close(ns->amqp);
    while (amqp_open(&ns->amqp, err, sizeof(err)) != LQ_OK) {
        ck_assert_msg(lqt_now_ms() < deadline,
                      "could not connect to the broker again within %d s: %s", LQT_WAIT_S, err);
        lqt_sleep_ms(200);
    }
    PQfinish(ns->db);
    for (;;) {
        ns->db = PQconnectdb(ns->db_url);
        if (PQstatus(ns->db) == CONNECTION_OK)
            break;
        snprintf(err, sizeof(err), "%s", PQerrorMessage(ns->db));
        PQfinish(ns->db);
        ns->db = NULL;
        ck_assert_msg(lqt_now_ms() < deadline,
                      "could not connect to the database again within %d s: %s", LQT_WAIT_S, err);
        lqt_sleep_ms(200);
    }
}

void lqt_ns_destroy(lqt_ns *ns)
{
    char line[256], path[600];
    glob_t files;

    if (ns == NULL)
        return;
    ns->amqp = lq_amqp_close(ns->amqp);
    for (size_t i = 0; i < LQT_WORKERS_MAX; i++) {
        lqt_worker *w = ns->workers[i];
        if (w == NULL)
            continue;
        /* A test that forgot to stop its worker: no verdict, just clean up. */
        kill(w->pid, SIGKILL);
        waitpid(w->pid, NULL, 0);
        free(w);
        ns->workers[i] = NULL;
    }
    for (size_t i = 0; i < LQT_LISTENERS_MAX; i++) {
        lqt_listener *l = ns->listeners[i];
        if (l == NULL)
            continue;
        if (l->conn) {
            amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
            amqp_destroy_connection(l->conn);
        }
        if (l->durable) {
            const char *const queue[] = {l->queue, NULL};
            char err[512];
            if (!raw_delete(queue, NULL, err, sizeof(err)))
                fprintf(stderr, "lqt: could not delete queue %s: %s\n", l->queue, err);
        }
        for (size_t k = 0; k < l->n; k++)
            free(l->events[k].body);
        free(l->events);
        free(l);
        ns->listeners[i] = NULL;
    }
    {
        const char *const names[5] = {ns->exchange, ns->queue, ns->results_exchange, ns->dlx,
                                      ns->dlq};
        delete_names(names);
    }
    for (char **e = ns->env; e && *e; e++)
        free(*e);
    free(ns->env);
    PQfinish(ns->db);
    {
        PGconn *admin = admin_connect();
        drop_database(admin, ns->db_name);
        PQfinish(admin);
    }
    /* The test passed (Check skips teardown after a failure): its files are not needed. */
    snprintf(path, sizeof(path), "%s/%s*", log_dir(), ns->prefix);
    if (glob(path, 0, NULL, &files) == 0) {
        for (size_t i = 0; i < files.gl_pathc; i++)
            unlink(files.gl_pathv[i]);
    }
    globfree(&files);
    snprintf(line, sizeof(line), "- %s\n", ns->db_name);
    names_record(line);
    free(ns->db_url);
    free(ns);
}

/* ------------------------------------------------------------ processes */

/* The environment of a child: ours without LEDGERQ_*, then the namespace's, then extra. */
typedef struct env_list {
    char **v;
    size_t n, cap;
} env_list;

static void env_set(env_list *e, const char *entry)
{
    size_t key_len = strcspn(entry, "=");

    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], entry, key_len) == 0 && e->v[i][key_len] == '=') {
            free(e->v[i]);
            e->v[i] = xstrdup(entry);
            return;
        }
    }
    if (e->n + 1 >= e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->v = realloc(e->v, e->cap * sizeof(*e->v));
        ck_assert_msg(e->v != NULL, "out of memory");
    }
    e->v[e->n++] = xstrdup(entry);
    e->v[e->n] = NULL;
}

static void env_setf(env_list *e, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *entry = xmalloc(len);

    snprintf(entry, len, "%s=%s", name, value);
    env_set(e, entry);
    free(entry);
}

static env_list child_env(const lqt_ns *ns, const char *const *extra)
{
    env_list e = {NULL, 0, 0};

    for (char **p = environ; *p; p++) {
        if (strncmp(*p, "LEDGERQ_", 8) != 0)
            env_set(&e, *p);
    }
    env_setf(&e, "LEDGERQ_AMQP_URL", amqp_url());
    env_setf(&e, "LEDGERQ_DATABASE_URL", ns->db_url);
    env_setf(&e, "LEDGERQ_EXCHANGE", ns->exchange);
    env_setf(&e, "LEDGERQ_QUEUE", ns->queue);
    env_setf(&e, "LEDGERQ_RESULTS_EXCHANGE", ns->results_exchange);
    env_setf(&e, "LEDGERQ_DLX", ns->dlx);
    env_setf(&e, "LEDGERQ_DLQ", ns->dlq);
    env_setf(&e, "LEDGERQ_HTTP_ADDR", "off");
    env_setf(&e, "LEDGERQ_LOG_FORMAT", "json");
    for (char **p = ns->env; p && *p; p++)
        env_set(&e, *p);
    for (const char *const *p = extra; p && *p; p++)
        env_set(&e, *p);
    if (e.v == NULL)
        env_set(&e, "LQT=1");
    return e;
}

static void env_free(env_list *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* fork and exec ledgerq with args; the child's fds 0, 1, 2 become in, out, err. */
static pid_t spawn(const lqt_ns *ns, const char *const *extra, const char *const *args, int in,
                   int out, int err)
{
    env_list env = child_env(ns, extra);
    size_t n_args = 0;
    char **argv;
    pid_t parent = getpid(), pid;

    while (args[n_args])
        n_args++;
    argv = xmalloc((n_args + 2) * sizeof(*argv));
    argv[0] = (char *)ledgerq_bin();
    for (size_t i = 0; i < n_args; i++)
        argv[i + 1] = (char *)args[i];
    argv[n_args + 1] = NULL;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Die with the test: a failed assertion ends it with _exit(), skipping teardown. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(127);
        close_range(3, ~0U, 0);
        execve(argv[0], argv, env.v);
        dprintf(2, "lqt: could not run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(argv);
    env_free(&env);
    return pid;
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

typedef struct buffer {
    char *p;
    size_t n, cap;
} buffer;

static void buffer_read(buffer *b, int fd, bool *open)
{
    ssize_t got;

    if (b->cap - b->n < 4096) {
        b->cap = b->cap ? 2 * b->cap : 8192;
        b->p = realloc(b->p, b->cap);
        ck_assert_msg(b->p != NULL, "out of memory");
    }
    got = read(fd, b->p + b->n, b->cap - b->n - 1);
    if (got > 0)
        b->n += (size_t)got;
    else if (got == 0 || (errno != EINTR && errno != EAGAIN))
        *open = false;
    b->p[b->n] = '\0';
}

static int run_argv(lqt_ns *ns, const char *const *env, lqt_output *ret, const char **args)
{
    int out_pipe[2], err_pipe[2], devnull, status;
    bool out_open = true, err_open = true;
    buffer out = {NULL, 0, 0}, err = {NULL, 0, 0};
    int64_t deadline = lqt_now_ms() + RUN_TIMEOUT_S * 1000;
    pid_t pid;

    ck_assert_msg(pipe2(out_pipe, O_CLOEXEC) == 0 && pipe2(err_pipe, O_CLOEXEC) == 0, "pipe: %s",
                  strerror(errno));
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(devnull >= 0, "/dev/null: %s", strerror(errno));
    pid = spawn(ns, env, args, devnull, out_pipe[1], err_pipe[1]);
    close(devnull);
    close(out_pipe[1]);
    close(err_pipe[1]);
    buffer_read(&out, -1, &(bool){true}); /* allocate: output may be empty */
    buffer_read(&err, -1, &(bool){true});
    while (out_open || err_open) {
        struct pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                                {err_open ? err_pipe[0] : -1, POLLIN, 0}};
        int64_t left = deadline - lqt_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            ck_abort_msg("ledgerq %s %s did not finish within %d s; stderr so far: %s", args[0],
                         args[1] ? args[1] : "", RUN_TIMEOUT_S, err.p);
        }
        if (poll(fds, 2, (int)left) < 0 && errno != EINTR)
            ck_abort_msg("poll: %s", strerror(errno));
        if (fds[0].revents)
            buffer_read(&out, out_pipe[0], &out_open);
        if (fds[1].revents)
            buffer_read(&err, err_pipe[0], &err_open);
    }
    close(out_pipe[0]);
    close(err_pipe[0]);
    while (waitpid(pid, &status, 0) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    ret->status = decode_status(status);
    ret->out = out.p;
    ret->out_len = out.n;
    ret->err = err.p;
    return ret->status;
}

void lqt_output_release(lqt_output *o)
{
    free(o->out);
    free(o->err);
    memset(o, 0, sizeof(*o));
}

static const char **collect_args(const char *arg, va_list ap)
{
    const char **args = xmalloc(64 * sizeof(*args));
    size_t n = 0;

    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        ck_assert_msg(n < 62, "too many arguments");
        args[n++] = a;
    }
    args[n] = NULL;
    return args;
}

int lqt_run_env(lqt_ns *ns, const char *const *env, lqt_output *ret, const char *arg, ...)
{
    va_list ap;
    const char **args;
    int status;

    va_start(ap, arg);
    args = collect_args(arg, ap);
    va_end(ap);
    status = run_argv(ns, env, ret, args);
    free(args);
    return status;
}

int lqt_run_argv(lqt_ns *ns, const char *const *env, lqt_output *ret, const char *const *args)
{
    const char **copy;
    size_t n = 0;
    int status;

    while (args[n])
        n++;
    copy = xmalloc((n + 1) * sizeof(*copy));
    memcpy(copy, args, (n + 1) * sizeof(*copy));
    status = run_argv(ns, env, ret, copy);
    free(copy);
    return status;
}

void lqt_run_ok_(lqt_ns *ns, const char *arg, ...)
{
    va_list ap;
    const char **args;
    lqt_output o;
    char cmd[512] = "";

    va_start(ap, arg);
    args = collect_args(arg, ap);
    va_end(ap);
    for (size_t i = 0; args[i]; i++) {
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof(cmd) - used, " %s", args[i]);
    }
    run_argv(ns, NULL, &o, args);
    free(args);
    ck_assert_msg(o.status == 0, "`ledgerq%s` exited %d; stderr: %s", cmd, o.status, o.err);
    lqt_output_release(&o);
}

void lqt_expect_failure(const lqt_output *o, int status, const char *what,
                        const char *const *mentions)
{
    ck_assert_msg(o->status == status, "%s exited %d, expected %d; stdout: %s; stderr: %s", what,
                  o->status, status, o->out, o->err);
    ck_assert_msg(lqt_one_line(o->err), "%s: stderr should be one line: \"%s\"", what, o->err);
    for (const char *const *m = mentions; m && *m; m++)
        ck_assert_msg(strstr(o->err, *m) != NULL, "%s: stderr should mention \"%s\": %s", what, *m,
                      o->err);
}

const char *lqt_write_file(lqt_ns *ns, const char *name, const char *text)
{
    static char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s%s", log_dir(), ns->prefix, name);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "could not create %s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_msg(fclose(f) == 0, "could not write %s", path);
    return path;
}

/* ------------------------------------------------------------ what users see */

/*
 * The integer written after "key": in a compact JSON text, read exactly
 * (cJSON would go through a double).
 */
static bool raw_int(const char *json, const char *key, int64_t *ret)
{
    char needle[80];
    const char *p;
    char *end;

    snprintf(needle, sizeof(needle), "\"%s\":", key);
    p = strstr(json, needle);
    if (p == NULL)
        return false;
    p += strlen(needle);
    errno = 0;
    *ret = strtoll(p, &end, 10);
    return errno == 0 && end != p && (*end == ',' || *end == '}');
}

void lqt_check_keys(const cJSON *obj, const char *what, const char *const *keys)
{
    size_t n_keys = 0, n_items = 0;
    const cJSON *item;

    while (keys[n_keys]) {
        ck_assert_msg(cJSON_GetObjectItemCaseSensitive(obj, keys[n_keys]) != NULL,
                      "%s has no \"%s\"", what, keys[n_keys]);
        n_keys++;
    }
    cJSON_ArrayForEach(item, obj)
    {
        n_items++;
    }
    ck_assert_msg(n_items == n_keys, "%s has %zu fields, expected %zu", what, n_items, n_keys);
}

static const char *json_string(const cJSON *obj, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    ck_assert_msg(cJSON_IsString(v), "%s: \"%s\" is not a string", what, key);
    return v->valuestring;
}

const char *lqt_json_string_or_null(const cJSON *obj, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNull(v))
        return NULL;
    ck_assert_msg(cJSON_IsString(v), "%s: \"%s\" is neither a string nor null", what, key);
    return v->valuestring;
}

/* A string-or-null member copied to ret (len bytes, "" for null); returns whether it was null. */
static bool json_nullable(const cJSON *obj, const char *key, const char *what, char *ret,
                          size_t len)
{
    const char *v = lqt_json_string_or_null(obj, key, what);

    snprintf(ret, len, "%s", v ? v : "");
    return v == NULL;
}

void lqt_account_show(lqt_ns *ns, const char *id, lqt_account *ret)
{
    static const char *const keys[] = {"id",
                                       "currency",
                                       "status",
                                       "balance",
                                       "debits",
                                       "credits",
                                       "held_debits",
                                       "held_credits",
                                       "available",
                                       "allow_negative",
                                       "overdraft_limit",
                                       "max_balance",
                                       "created_at",
                                       NULL};
    lqt_output o;
    cJSON *j;
    const cJSON *v;
    char what[200];
    time_t t;

    memset(ret, 0, sizeof(*ret));
    snprintf(what, sizeof(what), "`account show %s --json`", id);
    lqt_run(ns, &o, "account", "show", id, "--json");
    ck_assert_msg(o.status == 0, "%s exited %d: %s", what, o.status, o.err);
    ck_assert_msg(lqt_one_line(o.out), "%s printed more than one line: %s", what, o.out);
    snprintf(ret->raw, sizeof(ret->raw), "%s", o.out);
    j = cJSON_Parse(o.out);
    ck_assert_msg(cJSON_IsObject(j), "%s is not a JSON object: %s", what, o.out);
    lqt_check_keys(j, what, keys);
    snprintf(ret->id, sizeof(ret->id), "%s", json_string(j, "id", what));
    snprintf(ret->currency, sizeof(ret->currency), "%s", json_string(j, "currency", what));
    snprintf(ret->status, sizeof(ret->status), "%s", json_string(j, "status", what));
    ck_assert_msg(strcmp(ret->status, "active") == 0 || strcmp(ret->status, "frozen") == 0 ||
                      strcmp(ret->status, "closed") == 0,
                  "%s: status \"%s\" is none of active, frozen, closed", what, ret->status);
    snprintf(ret->created_at, sizeof(ret->created_at), "%s", json_string(j, "created_at", what));
    ck_assert_msg(lqt_parse_utc(ret->created_at, &t), "%s: created_at \"%s\" is not RFC 3339 UTC",
                  what, ret->created_at);
    v = cJSON_GetObjectItemCaseSensitive(j, "allow_negative");
    ck_assert_msg(cJSON_IsBool(v), "%s: allow_negative is not a boolean", what);
    ret->allow_negative = cJSON_IsTrue(v);
    ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "balance")) &&
                      cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "debits")) &&
                      cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "credits")),
                  "%s: balance, debits and credits must be JSON numbers: %s", what, o.out);
    ck_assert_msg(raw_int(o.out, "balance", &ret->balance) &&
                      raw_int(o.out, "debits", &ret->debits) &&
                      raw_int(o.out, "credits", &ret->credits) &&
                      raw_int(o.out, "held_debits", &ret->held_debits) &&
                      raw_int(o.out, "held_credits", &ret->held_credits) &&
                      raw_int(o.out, "available", &ret->available),
                  "%s: balance, debits, credits, held amounts and available must be JSON integers: "
                  "%s",
                  what, o.out);
    ck_assert_msg(ret->available == ret->balance - ret->held_debits,
                  "%s: available is not balance - held_debits: %s", what, o.out);
    ret->overdraft_limit_null =
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "overdraft_limit"));
    ck_assert_msg(ret->overdraft_limit_null ||
                      raw_int(o.out, "overdraft_limit", &ret->overdraft_limit),
                  "%s: overdraft_limit is neither an integer nor null: %s", what, o.out);
    ck_assert_msg(ret->overdraft_limit_null == ret->allow_negative,
                  "%s: overdraft_limit must be null exactly when allow_negative: %s", what, o.out);
    ret->max_balance_null = cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "max_balance"));
    ck_assert_msg(ret->max_balance_null || raw_int(o.out, "max_balance", &ret->max_balance),
                  "%s: max_balance is neither an integer nor null: %s", what, o.out);
    cJSON_Delete(j);
    lqt_output_release(&o);
    ck_assert_str_eq(ret->id, id);
}

void lqt_account_show_at(lqt_ns *ns, const char *id, const char *at, lqt_account_at *ret)
{
    static const char *const keys[] = {"id",          "currency",     "at",        "balance",
                                       "held_debits", "held_credits", "available", NULL};
    lqt_output o;
    cJSON *j;
    char what[200];

    memset(ret, 0, sizeof(*ret));
    snprintf(what, sizeof(what), "`account show %s --at %s --json`", id, at);
    lqt_run(ns, &o, "account", "show", id, "--at", at, "--json");
    ck_assert_msg(o.status == 0, "%s exited %d: %s", what, o.status, o.err);
    ck_assert_msg(lqt_one_line(o.out), "%s printed more than one line: %s", what, o.out);
    snprintf(ret->raw, sizeof(ret->raw), "%s", o.out);
    j = cJSON_Parse(o.out);
    ck_assert_msg(cJSON_IsObject(j), "%s is not a JSON object: %s", what, o.out);
    lqt_check_keys(j, what, keys);
    snprintf(ret->id, sizeof(ret->id), "%s", json_string(j, "id", what));
    snprintf(ret->currency, sizeof(ret->currency), "%s", json_string(j, "currency", what));
    snprintf(ret->at, sizeof(ret->at), "%s", json_string(j, "at", what));
    ck_assert_msg(raw_int(o.out, "balance", &ret->balance) &&
                      raw_int(o.out, "held_debits", &ret->held_debits) &&
                      raw_int(o.out, "held_credits", &ret->held_credits) &&
                      raw_int(o.out, "available", &ret->available),
                  "%s: balance, held amounts and available must be JSON integers: %s", what, o.out);
    ck_assert_msg(ret->available == ret->balance - ret->held_debits,
                  "%s: available is not balance - held_debits: %s", what, o.out);
    cJSON_Delete(j);
    lqt_output_release(&o);
}

int64_t lqt_balance(lqt_ns *ns, const char *id)
{
    lqt_account a;
    lqt_account_show(ns, id, &a);
    return a.balance;
}

char *lqt_accounts_snapshot(lqt_ns *ns)
{
    lqt_output o;
    char *text;

    lqt_run(ns, &o, "account", "list", "--json");
    ck_assert_msg(o.status == 0, "`account list --json` exited %d: %s", o.status, o.err);
    text = o.out;
    o.out = NULL;
    lqt_output_release(&o);
    return text;
}

int lqt_payment_show(lqt_ns *ns, const char *id, lqt_payment *ret, char *err_line)
{
    static const char *const keys[] = {"id",     "type", "status",       "reason",
                                       "detail", "legs", "processed_at", NULL};
    static const char *const account_keys[] = {"id",           "type",    "status", "reason",
                                               "detail",       "account", "change", "legs",
                                               "processed_at", NULL};
    static const char *const hold_keys[] = {"id",           "type",        "status",     "reason",
                                            "detail",       "hold_status", "expires_at", "legs",
                                            "processed_at", NULL};
    static const char *const resolution_keys[] = {
        "id", "type", "status", "reason", "detail", "hold", "legs", "processed_at", NULL};
    static const char *const leg_keys[] = {"debit", "credit", "amount", "currency", NULL};
    lqt_output o;
    cJSON *j;
    const cJSON *legs, *leg;
    char what[200];
    time_t t;
    int status;

    memset(ret, 0, sizeof(*ret));
    snprintf(what, sizeof(what), "`payment show %s --json`", id);
    status = lqt_run(ns, &o, "payment", "show", id, "--json");
    if (err_line)
        snprintf(err_line, 512, "%s", o.err);
    if (status != 0) {
        lqt_output_release(&o);
        return status;
    }
    ck_assert_msg(lqt_one_line(o.out), "%s printed more than one line: %s", what, o.out);
    snprintf(ret->raw, sizeof(ret->raw), "%s", o.out);
    j = cJSON_Parse(o.out);
    ck_assert_msg(cJSON_IsObject(j), "%s is not a JSON object: %s", what, o.out);
    snprintf(ret->type, sizeof(ret->type), "%s", json_string(j, "type", what));
    if (strncmp(ret->type, "account.", 8) == 0) {
        const cJSON *change = cJSON_GetObjectItemCaseSensitive(j, "change");
        char *text;
        lqt_check_keys(j, what, account_keys);
        snprintf(ret->account, sizeof(ret->account), "%s", json_string(j, "account", what));
        ck_assert_msg(cJSON_IsObject(change), "%s: change is not an object", what);
        text = cJSON_PrintUnformatted(change);
        ck_assert_msg(text != NULL, "out of memory");
        snprintf(ret->change, sizeof(ret->change), "%s", text);
        free(text);
    } else if (strcmp(ret->type, "hold") == 0) {
        bool null_status;
        lqt_check_keys(j, what, hold_keys);
        null_status =
            json_nullable(j, "hold_status", what, ret->hold_status, sizeof(ret->hold_status));
        ck_assert_msg(null_status || strcmp(ret->hold_status, "pending") == 0 ||
                          strcmp(ret->hold_status, "captured") == 0 ||
                          strcmp(ret->hold_status, "voided") == 0 ||
                          strcmp(ret->hold_status, "expired") == 0,
                      "%s: hold_status \"%s\" is none of pending, captured, voided, expired", what,
                      ret->hold_status);
        if (!json_nullable(j, "expires_at", what, ret->expires_at, sizeof(ret->expires_at)))
            ck_assert_msg(lqt_parse_utc(ret->expires_at, &t),
                          "%s: expires_at \"%s\" is not RFC 3339 UTC", what, ret->expires_at);
    } else if (strcmp(ret->type, "capture") == 0 || strcmp(ret->type, "void") == 0) {
        lqt_check_keys(j, what, resolution_keys);
        snprintf(ret->hold, sizeof(ret->hold), "%s", json_string(j, "hold", what));
    } else {
        lqt_check_keys(j, what, keys);
    }
    ck_assert_str_eq(json_string(j, "id", what), id);
    snprintf(ret->status, sizeof(ret->status), "%s", json_string(j, "status", what));
    ret->reason_null = json_nullable(j, "reason", what, ret->reason, sizeof(ret->reason));
    ret->detail_null = json_nullable(j, "detail", what, ret->detail, sizeof(ret->detail));
    snprintf(ret->processed_at, sizeof(ret->processed_at), "%s",
             json_string(j, "processed_at", what));
    ck_assert_msg(lqt_parse_utc(ret->processed_at, &t),
                  "%s: processed_at \"%s\" is not RFC 3339 UTC", what, ret->processed_at);
    legs = cJSON_GetObjectItemCaseSensitive(j, "legs");
    ck_assert_msg(cJSON_IsArray(legs), "%s: legs is not an array", what);
    cJSON_ArrayForEach(leg, legs)
    {
        lqt_leg *l;
        const cJSON *amount;
        ck_assert_msg(ret->n_legs < sizeof(ret->legs) / sizeof(ret->legs[0]),
                      "%s: more legs than the harness keeps", what);
        l = &ret->legs[ret->n_legs++];
        ck_assert_msg(cJSON_IsObject(leg), "%s: a leg is not an object", what);
        lqt_check_keys(leg, what, leg_keys);
        snprintf(l->debit, sizeof(l->debit), "%s", json_string(leg, "debit", what));
        snprintf(l->credit, sizeof(l->credit), "%s", json_string(leg, "credit", what));
        snprintf(l->currency, sizeof(l->currency), "%s", json_string(leg, "currency", what));
        amount = cJSON_GetObjectItemCaseSensitive(leg, "amount");
        /* Exact below 2^53; tests of larger amounts read the raw text. */
        ck_assert_msg(cJSON_IsNumber(amount), "%s: a leg's amount is not a number", what);
        l->amount = (int64_t)amount->valuedouble;
    }
    cJSON_Delete(j);
    lqt_output_release(&o);
    return 0;
}

/* A JSON number that is an integer cJSON holds exactly (below 2^53 in magnitude). */
static int64_t json_exact_int(const cJSON *obj, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    ck_assert_msg(cJSON_IsNumber(v), "%s: \"%s\" is not a number", what, key);
    ck_assert_msg(v->valuedouble == (double)(int64_t)v->valuedouble &&
                      v->valuedouble > -9007199254740992.0 && v->valuedouble < 9007199254740992.0,
                  "%s: \"%s\" is not an integer below 2^53 (check such values in the raw text)",
                  what, key);
    return (int64_t)v->valuedouble;
}

void lqt_account_history(lqt_ns *ns, const char *id, const char *const *args, lqt_history *ret)
{
    static const char *const keys[] = {"account", "entries", "next", NULL};
    static const char *const entry_keys[] = {"seq",    "command", "type",        "leg",
                                             "amount", "balance", "held_debits", "held_credits",
                                             "at",     NULL};
    static const char *const update_keys[] = {"seq",    "command", "type",        "leg",
                                              "amount", "balance", "held_debits", "held_credits",
                                              "at",     "change",  NULL};
    const char *argv[64];
    size_t n_args = 0;
    lqt_output o;
    cJSON *j;
    const cJSON *entries, *e, *next;
    char what[300];

    memset(ret, 0, sizeof(*ret));
    argv[n_args++] = "account";
    argv[n_args++] = "history";
    argv[n_args++] = id;
    argv[n_args++] = "--json";
    snprintf(what, sizeof(what), "`account history %s --json", id);
    for (const char *const *a = args; a && *a; a++) {
        ck_assert_msg(n_args < 62, "too many arguments");
        argv[n_args++] = *a;
        snprintf(what + strlen(what), sizeof(what) - strlen(what), " %s", *a);
    }
    argv[n_args] = NULL;
    snprintf(what + strlen(what), sizeof(what) - strlen(what), "`");
    lqt_run_argv(ns, NULL, &o, argv);
    ck_assert_msg(o.status == 0, "%s exited %d: %s", what, o.status, o.err);
    ck_assert_msg(lqt_one_line(o.out), "%s printed more than one line: %s", what, o.out);
    j = cJSON_Parse(o.out);
    ck_assert_msg(cJSON_IsObject(j), "%s is not a JSON object: %s", what, o.out);
    lqt_check_keys(j, what, keys);
    ck_assert_str_eq(json_string(j, "account", what), id);
    entries = cJSON_GetObjectItemCaseSensitive(j, "entries");
    ck_assert_msg(cJSON_IsArray(entries), "%s: entries is not an array", what);
    ret->entries = xmalloc(((size_t)cJSON_GetArraySize(entries) + 1) * sizeof(*ret->entries));
    cJSON_ArrayForEach(e, entries)
    {
        lqt_entry *x = &ret->entries[ret->n++];
        const cJSON *leg, *change;
        time_t t;

        memset(x, 0, sizeof(*x));
        ck_assert_msg(cJSON_IsObject(e), "%s: an entry is not an object", what);
        snprintf(x->type, sizeof(x->type), "%s", json_string(e, "type", what));
        lqt_check_keys(e, what, strcmp(x->type, "account.update") == 0 ? update_keys : entry_keys);
        x->seq = json_exact_int(e, "seq", what);
        snprintf(x->command, sizeof(x->command), "%s", json_string(e, "command", what));
        leg = cJSON_GetObjectItemCaseSensitive(e, "leg");
        ck_assert_msg(cJSON_IsNull(leg) || cJSON_IsNumber(leg),
                      "%s: leg is neither null nor a "
                      "number",
                      what);
        x->leg = cJSON_IsNull(leg) ? 0 : (int)json_exact_int(e, "leg", what);
        ck_assert_msg((x->leg == 0) == (strncmp(x->type, "account.", 8) == 0),
                      "%s: entry %" PRId64 " of type %s has leg %d", what, x->seq, x->type, x->leg);
        x->amount = json_exact_int(e, "amount", what);
        x->balance = json_exact_int(e, "balance", what);
        x->held_debits = json_exact_int(e, "held_debits", what);
        x->held_credits = json_exact_int(e, "held_credits", what);
        snprintf(x->at, sizeof(x->at), "%s", json_string(e, "at", what));
        ck_assert_msg(lqt_parse_utc(x->at, &t) && strlen(x->at) == 27,
                      "%s: at \"%s\" is not RFC 3339 UTC with microseconds", what, x->at);
        change = cJSON_GetObjectItemCaseSensitive(e, "change");
        if (change) {
            char *text;
            ck_assert_msg(cJSON_IsObject(change), "%s: change is not an object", what);
            text = cJSON_PrintUnformatted(change);
            ck_assert_msg(text != NULL, "out of memory");
            snprintf(x->change, sizeof(x->change), "%s", text);
            free(text);
        }
    }
    next = cJSON_GetObjectItemCaseSensitive(j, "next");
    ret->next_null = cJSON_IsNull(next);
    if (!ret->next_null)
        ret->next = json_exact_int(j, "next", what);
    cJSON_Delete(j);
    ret->raw = o.out;
    o.out = NULL;
    lqt_output_release(&o);
}

void lqt_history_release(lqt_history *h)
{
    free(h->entries);
    free(h->raw);
    memset(h, 0, sizeof(*h));
}

void lqt_history_all(lqt_ns *ns, const char *id, lqt_history *ret)
{
    size_t cap = 0;
    int64_t after = 0;

    memset(ret, 0, sizeof(*ret));
    ret->next_null = true;
    for (;;) {
        lqt_history page;
        char after_text[32];
        const char *const args[] = {"--limit", "1000", "--after", after_text, NULL};

        snprintf(after_text, sizeof(after_text), "%" PRId64, after);
        lqt_account_history(ns, id, args, &page);
        if (ret->n + page.n > cap) {
            cap = 2 * (ret->n + page.n) + 16;
            ret->entries = realloc(ret->entries, cap * sizeof(*ret->entries));
            ck_assert_msg(ret->entries != NULL, "out of memory");
        }
        if (page.n > 0)
            memcpy(ret->entries + ret->n, page.entries, page.n * sizeof(*page.entries));
        ret->n += page.n;
        if (page.next_null) {
            lqt_history_release(&page);
            return;
        }
        ck_assert_msg(page.n > 0 && page.next == page.entries[page.n - 1].seq,
                      "`account history %s --after %" PRId64 "`: next %" PRId64
                      " is not the seq of the page's last entry",
                      id, after, page.next);
        after = page.next;
        lqt_history_release(&page);
    }
}

void lqt_expect_history_consistent(lqt_ns *ns, const char *id, const lqt_history *h)
{
    lqt_account a;
    int64_t sum = 0;

    lqt_account_show(ns, id, &a);
    ck_assert_msg(h->n > 0, "account %s: no history entry", id);
    ck_assert_msg(strcmp(h->entries[0].type, "account.open") == 0 && h->entries[0].amount == 0 &&
                      h->entries[0].balance == 0 && h->entries[0].held_debits == 0 &&
                      h->entries[0].held_credits == 0,
                  "account %s: entry 1 is not an opening (type %s, amount %" PRId64
                  ", balance %" PRId64 ")",
                  id, h->entries[0].type, h->entries[0].amount, h->entries[0].balance);
    for (size_t i = 0; i < h->n; i++) {
        const lqt_entry *e = &h->entries[i];

        ck_assert_msg(e->seq == (int64_t)i + 1,
                      "account %s: entry %zu of its history is numbered %" PRId64
                      " (a gap, or out of order)",
                      id, i + 1, e->seq);
        ck_assert_msg(!__builtin_add_overflow(sum, e->amount, &sum),
                      "account %s: the amounts overflow at entry %" PRId64, id, e->seq);
        ck_assert_msg(e->balance == sum,
                      "account %s entry %" PRId64 " (%s leg %d of %s): balance %" PRId64
                      ", but the amounts up to it sum to %" PRId64,
                      id, e->seq, e->type, e->leg, e->command, e->balance, sum);
        ck_assert_msg(i == 0 || strcmp(h->entries[i - 1].at, e->at) <= 0,
                      "account %s entry %" PRId64 ": at %s is before entry %" PRId64 "'s %s", id,
                      e->seq, e->at, e->seq - 1, h->entries[i - 1].at);
        /* Transfers and captures post; holds, voids, expiries and account entries do not. */
        ck_assert_msg(strcmp(e->type, "transfer") == 0 || strcmp(e->type, "capture") == 0 ||
                          strcmp(e->type, "hold") == 0 || strcmp(e->type, "void") == 0 ||
                          strcmp(e->type, "expiry") == 0 || strcmp(e->type, "account.open") == 0 ||
                          strcmp(e->type, "account.update") == 0,
                      "account %s entry %" PRId64 ": unknown type \"%s\"", id, e->seq, e->type);
        ck_assert_msg((strcmp(e->type, "transfer") != 0 && strcmp(e->type, "capture") != 0) ||
                          e->amount != 0,
                      "account %s entry %" PRId64 ": a %s entry of amount 0", id, e->seq, e->type);
        ck_assert_msg(strcmp(e->type, "transfer") == 0 || strcmp(e->type, "capture") == 0 ||
                          e->amount == 0,
                      "account %s entry %" PRId64 ": an %s entry of amount %" PRId64, id, e->seq,
                      e->type, e->amount);
    }
    ck_assert_msg(sum == a.balance,
                  "account %s: balance %" PRId64 ", but its %zu entries' amounts sum to %" PRId64,
                  id, a.balance, h->n, sum);
    ck_assert_msg(h->entries[h->n - 1].held_debits == a.held_debits &&
                      h->entries[h->n - 1].held_credits == a.held_credits,
                  "account %s: held debits %" PRId64 " and credits %" PRId64
                  ", but its last entry has %" PRId64 " and %" PRId64,
                  id, a.held_debits, a.held_credits, h->entries[h->n - 1].held_debits,
                  h->entries[h->n - 1].held_credits);
}

size_t lqt_expect_histories_consistent(lqt_ns *ns)
{
    char *text = lqt_accounts_snapshot(ns);
    cJSON *list = cJSON_Parse(text);
    const cJSON *a;
    size_t n = 0;

    ck_assert_msg(cJSON_IsArray(list), "`account list --json` is not an array: %.200s", text);
    cJSON_ArrayForEach(a, list)
    {
        const char *id = json_string(a, "id", "`account list --json`");
        lqt_history h;

        lqt_history_all(ns, id, &h);
        lqt_expect_history_consistent(ns, id, &h);
        lqt_history_release(&h);
        n++;
    }
    cJSON_Delete(list);
    free(text);
    return n;
}

/* ------------------------------------------------------------ raw rabbitmq-c */

/* Whether r is a normal reply; if not, a line saying what failed in err. */
static bool raw_ok(amqp_rpc_reply_t r, const char *what, char *err, size_t err_len)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return true;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(err, err_len, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(err, err_len, "%s: channel closed: %d %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(err, err_len, "%s: connection closed: %d %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(err, err_len, "%s: server exception 0x%08x", what, r.reply.id);
        }
        break;
    default:
        snprintf(err, err_len, "%s: no reply", what);
    }
    return false;
}

static void raw_check(amqp_rpc_reply_t r, const char *what)
{
    char err[512];

    if (!raw_ok(r, what, err, sizeof(err)))
        ck_abort_msg("%s", err);
}

/*
 * A connection with channel 1 open, or NULL with a line in err.  Usable
 * outside a test.
 */
static amqp_connection_state_t raw_open(char *err, size_t err_len)
{
    struct amqp_connection_info info;
    char *url = strdup(amqp_url());
    amqp_connection_state_t conn = NULL;
    amqp_socket_t *sock;
    int status;

    if (url == NULL) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        snprintf(err, err_len, "LEDGERQ_TEST_AMQP_URL is invalid");
        goto out;
    }
    conn = amqp_new_connection();
    sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    if (sock == NULL) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    status = amqp_socket_open(sock, info.host, info.port);
    if (status != AMQP_STATUS_OK) {
        snprintf(err, err_len, "could not connect to the broker at %s:%d: %s", info.host, info.port,
                 amqp_error_string2(status));
        goto fail;
    }
    if (!raw_ok(amqp_login(conn, info.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, AMQP_SASL_METHOD_PLAIN,
                           info.user, info.password),
                "could not log in to the broker", err, err_len))
        goto fail;
    amqp_channel_open(conn, 1);
    if (!raw_ok(amqp_get_rpc_reply(conn), "could not open a channel", err, err_len))
        goto fail;
    goto out;
fail:
    if (conn)
        amqp_destroy_connection(conn);
    conn = NULL;
out:
    free(url);
    return conn;
}

/* A connection with channel 1 open. */
static amqp_connection_state_t raw_connect(void)
{
    char err[512];
    amqp_connection_state_t conn = raw_open(err, sizeof(err));

    ck_assert_msg(conn != NULL, "%s", err);
    return conn;
}

static void raw_close(amqp_connection_state_t conn)
{
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/*
 * Delete the queues, then the exchanges (NULL-terminated lists, either may
 * be NULL: deleting an exchange does not delete what is bound to it), on a
 * connection of its own.  Deleting what does not exist succeeds.  false,
 * with a line in err, at the first failure.  Usable outside a test.
 */
static bool raw_delete(const char *const *queues, const char *const *exchanges, char *err,
                       size_t err_len)
{
    amqp_connection_state_t conn = raw_open(err, err_len);
    bool ok = conn != NULL;

    for (const char *const *q = queues; ok && q && *q; q++) {
        amqp_queue_delete(conn, 1, amqp_cstring_bytes(*q), 0, 0);
        ok = raw_ok(amqp_get_rpc_reply(conn), "could not delete a queue", err, err_len);
    }
    for (const char *const *x = exchanges; ok && x && *x; x++) {
        amqp_exchange_delete(conn, 1, amqp_cstring_bytes(*x), 0);
        ok = raw_ok(amqp_get_rpc_reply(conn), "could not delete an exchange", err, err_len);
    }
    if (ok)
        raw_close(conn);
    else if (conn)
        amqp_destroy_connection(conn);
    return ok;
}

void lqt_delete_queue(lqt_ns *ns, const char *queue)
{
    const char *const queues[] = {queue, NULL};
    char err[512];

    (void)ns;
    ck_assert_msg(raw_delete(queues, NULL, err, sizeof(err)), "deleting queue %s: %s", queue, err);
}

void lqt_delete_exchange(lqt_ns *ns, const char *exchange)
{
    const char *const exchanges[] = {exchange, NULL};
    char err[512];

    (void)ns;
    ck_assert_msg(raw_delete(NULL, exchanges, err, sizeof(err)), "deleting exchange %s: %s",
                  exchange, err);
}

uint32_t lqt_purge(lqt_ns *ns, const char *queue)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_queue_purge_ok_t *ok;
    uint32_t n;

    (void)ns;
    ok = amqp_queue_purge(conn, 1, amqp_cstring_bytes(queue));
    raw_check(amqp_get_rpc_reply(conn), "could not purge a queue");
    n = ok->message_count;
    raw_close(conn);
    return n;
}

/* Publish m with its custom header on a connection of its own, confirmed. */
static void raw_publish(const lqt_ns *ns, const lqt_msg *m)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_basic_properties_t props;
    amqp_table_entry_t header;
    amqp_bytes_t body = {.len = m->len ? m->len : strlen(m->body), .bytes = (void *)m->body};
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    bool returned = false;

    amqp_confirm_select(conn, 1);
    raw_check(amqp_get_rpc_reply(conn), "could not enable confirms");
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (m->content_type == NULL || strcmp(m->content_type, LQT_NO_CONTENT_TYPE) != 0) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type =
            amqp_cstring_bytes(m->content_type ? m->content_type : "application/json");
    }
    if (m->message_id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(m->message_id);
    }
    if (m->reply_to) {
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
        props.reply_to = amqp_cstring_bytes(m->reply_to);
    }
    header.key = amqp_cstring_bytes(m->header);
    header.value.kind = AMQP_FIELD_KIND_UTF8;
    header.value.value.bytes = amqp_cstring_bytes(m->header_value ? m->header_value : "");
    props.headers.num_entries = 1;
    props.headers.entries = &header;
    ck_assert_msg(amqp_basic_publish(
                      conn, 1, amqp_cstring_bytes(ns->exchange),
                      amqp_cstring_bytes(m->routing_key ? m->routing_key : "payment.submitted"), 1,
                      0, &props, body) == AMQP_STATUS_OK,
                  "could not publish");
    for (;;) {
        amqp_frame_t frame;
        int64_t left = deadline - lqt_now_ms();
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        int status;

        ck_assert_msg(left > 0, "no publisher confirm within %d s", LQT_WAIT_S);
        status = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
        if (status == AMQP_STATUS_TIMEOUT)
            continue;
        ck_assert_msg(status == AMQP_STATUS_OK, "waiting for a confirm: %s",
                      amqp_error_string2(status));
        if (frame.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (frame.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            amqp_message_t msg;
            raw_check(amqp_read_message(conn, frame.channel, &msg, 0), "reading a return");
            amqp_destroy_message(&msg);
            returned = true;
            continue;
        }
        if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD)
            break;
        ck_abort_msg("the broker did not confirm a publish (method 0x%08x)",
                     frame.payload.method.id);
    }
    ck_assert_msg(!returned, "a message to %s with routing key %s was unroutable", ns->exchange,
                  m->routing_key ? m->routing_key : "payment.submitted");
    raw_close(conn);
}

/* ------------------------------------------------------------ publishing */

void lqt_send(lqt_ns *ns, const lqt_msg *m)
{
    lq_publish p;
    int r;

    if (m->header) {
        raw_publish(ns, m);
        return;
    }
    memset(&p, 0, sizeof(p));
    p.exchange = ns->exchange;
    p.routing_key = m->routing_key ? m->routing_key : "payment.submitted";
    p.body = m->body;
    p.body_len = m->len ? m->len : strlen(m->body);
    if (m->content_type == NULL)
        p.content_type = "application/json";
    else if (strcmp(m->content_type, LQT_NO_CONTENT_TYPE) != 0)
        p.content_type = m->content_type;
    p.message_id = m->message_id;
    p.reply_to = m->reply_to;
    p.mandatory = true;
    r = lq_amqp_publish(ns->amqp, &p, NULL);
    ck_assert_msg(r == LQ_OK, "could not publish: %s", lq_amqp_error(ns->amqp));
}

void lqt_confirm(lqt_ns *ns)
{
    int r = lq_amqp_wait_confirms(ns->amqp, LQT_WAIT_S * 1000);

    ck_assert_msg(r == LQ_OK, "publishes were not confirmed: %s (%s)", lq_strerror(r),
                  lq_amqp_error(ns->amqp));
    ck_assert_msg(lq_amqp_returned(ns->amqp) == 0,
                  "%" PRIu64 " published message(s) were unroutable (no queue bound to %s?)",
                  lq_amqp_returned(ns->amqp), ns->exchange);
}

void lqt_publish(lqt_ns *ns, const lqt_msg *m)
{
    lqt_send(ns, m);
    lqt_confirm(ns);
}

void lqt_pay(lqt_ns *ns, const char *json)
{
    lqt_msg m = {.body = json};
    lqt_publish(ns, &m);
}

/* ------------------------------------------------------------ result events */

static lqt_listener *listener_new(lqt_ns *ns, const char *exchange)
{
    lqt_listener *l = calloc(1, sizeof(*l));
    amqp_queue_declare_ok_t *ok;
    size_t slot;

    ck_assert_msg(l != NULL, "out of memory");
    for (slot = 0; slot < LQT_LISTENERS_MAX && ns->listeners[slot]; slot++)
        ;
    ck_assert_msg(slot < LQT_LISTENERS_MAX, "too many listeners");
    l->ns = ns;
    l->conn = raw_connect();
    ns->listeners[slot] = l;
    ok = amqp_queue_declare(l->conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(l->conn), "could not declare a listener queue");
    copy_bytes(l->queue, sizeof(l->queue), ok->queue);
    if (exchange) {
        amqp_queue_bind(l->conn, 1, amqp_cstring_bytes(l->queue), amqp_cstring_bytes(exchange),
                        amqp_cstring_bytes("#"), amqp_empty_table);
        raw_check(amqp_get_rpc_reply(l->conn), "could not bind a listener queue");
    }
    amqp_basic_consume(l->conn, 1, amqp_cstring_bytes(l->queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    raw_check(amqp_get_rpc_reply(l->conn), "could not consume from a listener queue");
    return l;
}

static bool receive(lqt_listener *l, int timeout_ms);

lqt_listener *lqt_listen_durable(lqt_ns *ns)
{
    lqt_listener *l = calloc(1, sizeof(*l));
    amqp_connection_state_t conn;
    char line[512];
    size_t slot;

    ck_assert_msg(l != NULL, "out of memory");
    for (slot = 0; slot < LQT_LISTENERS_MAX && ns->listeners[slot]; slot++)
        ;
    ck_assert_msg(slot < LQT_LISTENERS_MAX, "too many listeners");
    l->ns = ns;
    l->durable = true;
    snprintf(l->queue, sizeof(l->queue), "%sevents", ns->prefix);
    snprintf(line, sizeof(line), "* %s %s\n", ns->db_name, l->queue);
    names_record(line);
    ns->listeners[slot] = l;
    conn = raw_connect();
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(l->queue), 0, 1, 0, 0, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(conn), "could not declare a durable listener queue");
    amqp_queue_bind(conn, 1, amqp_cstring_bytes(l->queue), amqp_cstring_bytes(ns->results_exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    raw_check(amqp_get_rpc_reply(conn), "could not bind a durable listener queue");
    raw_close(conn);
    return l;
}

size_t lqt_listener_collect(lqt_listener *l)
{
    amqp_queue_declare_ok_t *ok;
    size_t before = l->n, want;

    ck_assert_msg(l->durable, "lqt_listener_collect() is for durable listeners");
    if (l->conn == NULL) {
        l->conn = raw_connect();
        amqp_basic_qos(l->conn, 1, 0, 1000, 0);
        raw_check(amqp_get_rpc_reply(l->conn), "could not set a prefetch");
    }
    ok = amqp_queue_declare(l->conn, 1, amqp_cstring_bytes(l->queue), 1, 0, 0, 0, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(l->conn), "could not look at a durable listener queue");
    want = ok->message_count;
    if (want == 0)
        return 0;
    /* Acked as delivered (no-ack): the broker is expected to stay up meanwhile. */
    amqp_basic_consume(l->conn, 1, amqp_cstring_bytes(l->queue), amqp_empty_bytes, 0, 1, 0,
                       amqp_empty_table);
    raw_check(amqp_get_rpc_reply(l->conn), "could not consume from a durable listener queue");
    while (l->n - before < want) {
        ck_assert_msg(receive(l, LQT_WAIT_S * 1000),
                      "timed out taking %zu events from %s: %zu came", want, l->queue,
                      l->n - before);
    }
    /* Nothing more: the consumer ends with the connection. */
    amqp_connection_close(l->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(l->conn);
    l->conn = NULL;
    return want;
}

lqt_listener *lqt_listen(lqt_ns *ns)
{
    return listener_new(ns, ns->results_exchange);
}

lqt_listener *lqt_listen_queue(lqt_ns *ns)
{
    return listener_new(ns, NULL);
}

const char *lqt_listener_queue(const lqt_listener *l)
{
    return l->queue;
}

/* Parse and check one result event (docs/protocol.md sections 6, 12 and 14). */
static void parse_event(lqt_event *e)
{
    static const char *const keys[] = {"id",     "type",      "status",       "reason",
                                       "detail", "duplicate", "processed_at", NULL};
    /* A void names its hold; a capture also tells the amount it posted. */
    static const char *const void_keys[] = {"id",   "type",      "status",       "reason", "detail",
                                            "hold", "duplicate", "processed_at", NULL};
    static const char *const capture_keys[] = {"id",           "type", "status", "reason",
                                               "detail",       "hold", "amount", "duplicate",
                                               "processed_at", NULL};
    /* Release 0.1.0's events, from before command types: the upgrade tests see them. */
    static const char *const untyped_keys[] = {"id",        "status",       "reason", "detail",
                                               "duplicate", "processed_at", NULL};
    const char *what = "a result event";
    cJSON *j = cJSON_Parse(e->body);
    const cJSON *dup;
    time_t t;

    ck_assert_msg(cJSON_IsObject(j), "a result event is not a JSON object: %s", e->body);
    e->type[0] = '\0';
    e->has_hold = false;
    e->hold[0] = '\0';
    e->amount_null = true;
    e->amount = 0;
    if (cJSON_GetObjectItemCaseSensitive(j, "type") != NULL) {
        snprintf(e->type, sizeof(e->type), "%s", json_string(j, "type", what));
        if (strcmp(e->type, "capture") == 0)
            lqt_check_keys(j, what, capture_keys);
        else if (strcmp(e->type, "void") == 0)
            lqt_check_keys(j, what, void_keys);
        else
            lqt_check_keys(j, what, keys);
    } else {
        lqt_check_keys(j, what, untyped_keys);
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "hold") != NULL) {
        e->has_hold = true;
        snprintf(e->hold, sizeof(e->hold), "%s", json_string(j, "hold", what));
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "amount") != NULL) {
        e->amount_null = cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "amount"));
        ck_assert_msg(e->amount_null || raw_int(e->body, "amount", &e->amount),
                      "a capture event's amount is neither an integer nor null: %s", e->body);
    }
    snprintf(e->id, sizeof(e->id), "%s", json_string(j, "id", what));
    snprintf(e->status, sizeof(e->status), "%s", json_string(j, "status", what));
    e->reason_null = json_nullable(j, "reason", what, e->reason, sizeof(e->reason));
    e->detail_null = json_nullable(j, "detail", what, e->detail, sizeof(e->detail));
    dup = cJSON_GetObjectItemCaseSensitive(j, "duplicate");
    ck_assert_msg(cJSON_IsBool(dup), "a result event's duplicate is not a boolean: %s", e->body);
    e->duplicate = cJSON_IsTrue(dup);
    snprintf(e->processed_at, sizeof(e->processed_at), "%s", json_string(j, "processed_at", what));
    ck_assert_msg(lqt_parse_utc(e->processed_at, &t),
                  "a result event's processed_at is not RFC 3339 UTC: %s", e->body);
    cJSON_Delete(j);
}

/* Receive one message, waiting at most timeout_ms; false when none came. */
static bool receive(lqt_listener *l, int timeout_ms)
{
    amqp_envelope_t env;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    amqp_rpc_reply_t r;
    const amqp_basic_properties_t *props;
    lqt_event *e;

    amqp_maybe_release_buffers(l->conn);
    r = amqp_consume_message(l->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return false;
    raw_check(r, "could not receive a result event");
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->events = realloc(l->events, l->cap * sizeof(*l->events));
        ck_assert_msg(l->events != NULL, "out of memory");
    }
    e = &l->events[l->n++];
    memset(e, 0, sizeof(*e));
    e->body = lqt_strndup(env.message.body.bytes, env.message.body.len);
    copy_bytes(e->routing_key, sizeof(e->routing_key), env.routing_key);
    props = &env.message.properties;
    if (props->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
        e->has_correlation_id = true;
        copy_bytes(e->correlation_id, sizeof(e->correlation_id), props->correlation_id);
    }
    if (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        copy_bytes(e->content_type, sizeof(e->content_type), props->content_type);
    e->persistent = (props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
                    props->delivery_mode == AMQP_DELIVERY_PERSISTENT;
    amqp_destroy_envelope(&env);
    parse_event(e);
    return true;
}

void lqt_wait_events(lqt_listener *l, size_t n)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;

    while (l->n < n) {
        int64_t left = deadline - lqt_now_ms();
        if (left <= 0) {
            fprintf(stderr, "lqt: waited %d s for %zu result events, %zu came:\n", LQT_WAIT_S, n,
                    l->n);
            for (size_t i = 0; i < l->n; i++)
                fprintf(stderr, "  %s\n", l->events[i].body);
            lqt_print_logs(l->ns);
            ck_abort_msg("timed out after %d s waiting for %zu result events on %s: %zu came",
                         LQT_WAIT_S, n, l->queue, l->n);
        }
        receive(l, (int)left);
    }
}

void lqt_drain_events(lqt_listener *l, int ms)
{
    int64_t deadline = lqt_now_ms() + ms;

    for (int64_t left = ms; left > 0; left = deadline - lqt_now_ms())
        receive(l, (int)left);
}

size_t lqt_event_count(const lqt_listener *l)
{
    return l->n;
}

const lqt_event *lqt_event_at(const lqt_listener *l, size_t i)
{
    ck_assert_msg(i < l->n, "event %zu asked for, %zu received", i, l->n);
    return &l->events[i];
}

const lqt_event *lqt_event_find(const lqt_listener *l, const char *id, size_t nth)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->events[i].id, id) == 0 && nth-- == 0)
            return &l->events[i];
    }
    return NULL;
}

size_t lqt_event_count_id(const lqt_listener *l, const char *id)
{
    size_t count = 0;

    for (size_t i = 0; i < l->n; i++)
        count += strcmp(l->events[i].id, id) == 0;
    return count;
}

static int compare_event_ids(const void *a, const void *b)
{
    const lqt_event *x = *(const lqt_event *const *)a, *y = *(const lqt_event *const *)b;
    int c = strcmp(x->id, y->id);

    /* The events lie in the listener's array in the order they came. */
    return c ? c : (x > y) - (x < y);
}

const lqt_event **lqt_events_by_id(const lqt_listener *l)
{
    const lqt_event **index = xmalloc(l->n * sizeof(*index));

    for (size_t i = 0; i < l->n; i++)
        index[i] = &l->events[i];
    qsort(index, l->n, sizeof(*index), compare_event_ids);
    return index;
}

/* Whether two events tell the same outcome: status, reason, processed_at. */
static bool same_outcome(const lqt_event *a, const lqt_event *b)
{
    return strcmp(a->status, b->status) == 0 && a->reason_null == b->reason_null &&
           strcmp(a->reason, b->reason) == 0 && strcmp(a->processed_at, b->processed_at) == 0;
}

static bool is_conflict(const lqt_event *e)
{
    return !e->duplicate && strcmp(e->status, "rejected") == 0 && !e->reason_null &&
           strcmp(e->reason, "idempotency_conflict") == 0;
}

bool lqt_has_first_outcome(const lqt_event *const *events, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!events[i]->duplicate && !is_conflict(events[i]))
            return true;
    }
    return false;
}

const lqt_event *lqt_expect_first_outcome(const char *id, const lqt_event *const *events, size_t n,
                                          size_t *ret_conflicts)
{
    const lqt_event *first = NULL;
    size_t conflicts = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_conflict(events[i])) {
            ck_assert_msg(ret_conflicts != NULL, "%s: an idempotency conflict, none expected: %s",
                          id, events[i]->body);
            conflicts++;
        } else if (!events[i]->duplicate && first == NULL) {
            first = events[i];
        }
    }
    ck_assert_msg(first != NULL,
                  "%s: none of its %zu result events says it was processed for the first time "
                  "(duplicate: false): %zu duplicates, %zu idempotency conflicts",
                  id, n, n - conflicts, conflicts);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(is_conflict(events[i]) || same_outcome(events[i], first),
                      "%s: two result events tell different outcomes: %s and %s", id, first->body,
                      events[i]->body);
    }
    if (ret_conflicts)
        *ret_conflicts = conflicts;
    return first;
}

/* ------------------------------------------------------------ queues */

lq_delivery **lqt_get_n(lqt_ns *ns, const char *queue, size_t n, bool ack)
{
    lq_delivery **got = xmalloc((n + 1) * sizeof(*got));
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    size_t have = 0;
    int r;

    while (have < n) {
        lq_delivery *d = NULL;
        r = lq_amqp_get(ns->amqp, queue, &d);
        if (r == LQ_ERR_NOT_FOUND) {
            if (lqt_now_ms() >= deadline) {
                lqt_print_logs(ns);
                ck_abort_msg("timed out after %d s waiting for %zu messages on %s: %zu came",
                             LQT_WAIT_S, n, queue, have);
            }
            lqt_sleep_ms(20);
            continue;
        }
        ck_assert_msg(r == LQ_OK, "basic.get from %s: %s", queue, lq_amqp_error(ns->amqp));
        if (ack)
            ck_assert_msg(lq_amqp_ack(ns->amqp, d->tag, false) == LQ_OK, "ack: %s",
                          lq_amqp_error(ns->amqp));
        got[have++] = d;
    }
    {
        lq_delivery *extra = NULL;
        r = lq_amqp_get(ns->amqp, queue, &extra);
        if (r == LQ_OK) {
            char body[300];
            snprintf(body, sizeof(body), "%.*s",
                     (int)(extra->body_len < 200 ? extra->body_len : 200), extra->body);
            lq_delivery_free(extra);
            ck_abort_msg("%s holds more than the %zu messages expected: also %s", queue, n, body);
        }
        ck_assert_msg(r == LQ_ERR_NOT_FOUND, "basic.get from %s: %s", queue,
                      lq_amqp_error(ns->amqp));
    }
    return got;
}

lq_delivery **lqt_get_all(lqt_ns *ns, const char *queue, size_t *ret_n)
{
    lq_delivery **got = NULL;
    size_t n = 0, cap = 0;

    for (;;) {
        lq_delivery *d = NULL;
        int r = lq_amqp_get(ns->amqp, queue, &d);
        if (r == LQ_ERR_NOT_FOUND)
            break;
        ck_assert_msg(r == LQ_OK, "basic.get from %s: %s", queue, lq_amqp_error(ns->amqp));
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            got = realloc(got, cap * sizeof(*got));
            ck_assert_msg(got != NULL, "out of memory");
        }
        got[n++] = d;
    }
    *ret_n = n;
    return got;
}

void lqt_deliveries_free(lq_delivery **d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lq_delivery_free(d[i]);
    free(d);
}

void lqt_requeue_unacked(lqt_ns *ns)
{
    ns->amqp = lq_amqp_close(ns->amqp);
    ns->amqp = lqt_amqp_connect();
}

uint32_t lqt_queue_ready(lqt_ns *ns, const char *queue, uint32_t *ret_consumers)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_queue_declare_ok_t *ok;
    uint32_t ready;

    (void)ns;
    ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(conn), "could not look at a queue");
    ready = ok->message_count;
    if (ret_consumers)
        *ret_consumers = ok->consumer_count;
    raw_close(conn);
    return ready;
}

bool lqt_queue_exists(lqt_ns *ns, const char *queue, uint32_t *ret_consumers)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_queue_declare_ok_t *ok;
    amqp_rpc_reply_t r;
    bool exists;

    (void)ns;
    ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    r = amqp_get_rpc_reply(conn);
    exists = r.reply_type == AMQP_RESPONSE_NORMAL;
    if (exists) {
        if (ret_consumers)
            *ret_consumers = ok->consumer_count;
        raw_close(conn);
        return true;
    }
    /* 404: the broker closed the channel; anything else is the test's failure. */
    ck_assert_msg(r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                      r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
                      ((amqp_channel_close_t *)r.reply.decoded)->reply_code == 404,
                  "could not look at queue %s", queue);
    amqp_send_method(conn, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &(amqp_channel_close_ok_t){0});
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return false;
}

void lqt_wait_queue_ready(lqt_ns *ns, const char *queue, uint32_t n)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;
    uint32_t ready;

    while ((ready = lqt_queue_ready(ns, queue, NULL)) != n) {
        if (lqt_now_ms() >= deadline) {
            lqt_print_logs(ns);
            ck_abort_msg("timed out after %d s waiting for %s to hold %u ready messages: %u",
                         LQT_WAIT_S, queue, n, ready);
        }
        lqt_sleep_ms(20);
    }
}

const char *lqt_header(const lq_delivery *d, const char *name)
{
    static char value[4096];

    return lq_delivery_header_string(d, name, value, sizeof(value)) ? value : NULL;
}

static const amqp_field_value_t *table_get(const amqp_table_t *t, const char *key)
{
    size_t len = strlen(key);

    for (int i = 0; i < t->num_entries; i++) {
        if (t->entries[i].key.len == len && memcmp(t->entries[i].key.bytes, key, len) == 0)
            return &t->entries[i].value;
    }
    return NULL;
}

static void field_string(const amqp_field_value_t *v, char *ret, size_t len)
{
    ret[0] = '\0';
    if (v && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES))
        copy_bytes(ret, len, v->value.bytes);
}

static void describe_death(const amqp_message_t *msg, lqt_death *d)
{
    const amqp_basic_properties_t *props = &msg->properties;
    const amqp_field_value_t *deaths;

    memset(d, 0, sizeof(*d));
    copy_bytes(d->body, sizeof(d->body), msg->body);
    if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
        return;
    field_string(table_get(&props->headers, "x-ledgerq-error"), d->error, sizeof(d->error));
    field_string(table_get(&props->headers, "x-ledgerq-error-detail"), d->detail,
                 sizeof(d->detail));
    deaths = table_get(&props->headers, "x-death");
    if (deaths && deaths->kind == AMQP_FIELD_KIND_ARRAY && deaths->value.array.num_entries > 0 &&
        deaths->value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE) {
        const amqp_table_t *first = &deaths->value.array.entries[0].value.table;
        const amqp_field_value_t *count = table_get(first, "count");
        field_string(table_get(first, "reason"), d->reason, sizeof(d->reason));
        field_string(table_get(first, "queue"), d->queue, sizeof(d->queue));
        if (count && count->kind == AMQP_FIELD_KIND_I64)
            d->count = count->value.i64;
        else if (count && count->kind == AMQP_FIELD_KIND_I32)
            d->count = count->value.i32;
    }
}

size_t lqt_dead_letters(lqt_ns *ns, const char *queue, lqt_death *ret, size_t max)
{
    amqp_connection_state_t conn = raw_connect();
    size_t n = 0;

    (void)ns;
    for (;;) {
        amqp_rpc_reply_t reply = amqp_basic_get(conn, 1, amqp_cstring_bytes(queue), 0);
        amqp_message_t msg;

        raw_check(reply, "could not get a message");
        if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
            break;
        raw_check(amqp_read_message(conn, 1, &msg, 0), "could not read a message");
        if (n < max)
            describe_death(&msg, &ret[n]);
        n++;
        amqp_destroy_message(&msg);
        amqp_maybe_release_buffers(conn);
    }
    /* Unacked: closing the connection puts them back, in their order. */
    raw_close(conn);
    return n;
}

/* ------------------------------------------------------------ workers */

lqt_worker *lqt_worker_start(lqt_ns *ns, const char *const *env)
{
    lqt_worker *w = calloc(1, sizeof(*w));
    const char *args[] = {"worker", NULL};
    size_t slot;
    int log, devnull;

    ck_assert_msg(w != NULL, "out of memory");
    for (slot = 0; slot < LQT_WORKERS_MAX && ns->workers[slot]; slot++)
        ;
    ck_assert_msg(slot < LQT_WORKERS_MAX, "too many workers");
    w->ns = ns;
    snprintf(w->log_path, sizeof(w->log_path), "%s/%sworker-%d.log", log_dir(), ns->prefix,
             ++ns->n_workers_started);
    log = open(w->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_msg(log >= 0, "could not create %s: %s", w->log_path, strerror(errno));
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(devnull >= 0, "/dev/null: %s", strerror(errno));
    w->pid = spawn(ns, env, args, devnull, log, log);
    close(devnull);
    close(log);
    /* Shown by meson only when the test fails: where to look. */
    printf("lqt: worker %d logs to %s\n", (int)w->pid, w->log_path);
    fflush(stdout); /* a failed assertion ends the test with _exit() */
    ns->workers[slot] = w;
    return w;
}

pid_t lqt_start(lqt_ns *ns, const char *log_path, const char *const *args)
{
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644), devnull;
    pid_t pid;

    ck_assert_msg(log >= 0, "could not open %s: %s", log_path, strerror(errno));
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_msg(devnull >= 0, "/dev/null: %s", strerror(errno));
    pid = spawn(ns, NULL, args, devnull, log, log);
    close(devnull);
    close(log);
    return pid;
}

pid_t lqt_worker_pid(const lqt_worker *w)
{
    return w->pid;
}

static void print_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    long size;
    size_t got, start, lines = 0;

    if (f == NULL) {
        fprintf(stderr, "lqt: no log %s\n", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (size > 65536) {
        fseek(f, size - 65536, SEEK_SET);
        size = 65536;
    } else {
        fseek(f, 0, SEEK_SET);
    }
    text = xmalloc((size_t)size + 1);
    got = fread(text, 1, (size_t)size, f);
    text[got] = '\0';
    fclose(f);
    start = got;
    while (start > 0 && lines <= LOG_TAIL_LINES) {
        start--;
        if (text[start] == '\n' && start + 1 < got)
            lines++;
    }
    if (lines > LOG_TAIL_LINES)
        start++;
    fprintf(stderr, "---- last lines of %s ----\n%s---- end of %s ----\n", path, text + start,
            path);
    free(text);
}

void lqt_print_logs(const lqt_ns *ns)
{
    char path[600];

    for (int k = 1; k <= ns->n_workers_started; k++) {
        snprintf(path, sizeof(path), "%s/%sworker-%d.log", log_dir(), ns->prefix, k);
        print_log_tail(path);
    }
}

int lqt_worker_stop(lqt_worker *w)
{
    int64_t deadline = lqt_now_ms() + STOP_TIMEOUT_S * 1000;
    int status = 0, code;
    pid_t got;

    ck_assert_msg(kill(w->pid, SIGTERM) == 0, "kill %d: %s", (int)w->pid, strerror(errno));
    while ((got = waitpid(w->pid, &status, WNOHANG)) == 0 && lqt_now_ms() < deadline)
        lqt_sleep_ms(10);
    if (got == 0) {
        fprintf(stderr, "lqt: worker %d still running %d s after SIGTERM: SIGKILL\n", (int)w->pid,
                STOP_TIMEOUT_S);
        kill(w->pid, SIGKILL);
        waitpid(w->pid, &status, 0);
    }
    code = decode_status(status);
    if (code != 0) {
        fprintf(stderr, "lqt: worker %d ended with status %d\n", (int)w->pid, code);
        print_log_tail(w->log_path);
    }
    for (size_t i = 0; i < LQT_WORKERS_MAX; i++) {
        if (w->ns->workers[i] == w)
            w->ns->workers[i] = NULL;
    }
    free(w);
    return code;
}

void lqt_worker_signal(lqt_worker *w, int sig)
{
    ck_assert_msg(kill(w->pid, sig) == 0, "kill -%d %d: %s", sig, (int)w->pid, strerror(errno));
}

static void worker_forget(lqt_worker *w)
{
    for (size_t i = 0; i < LQT_WORKERS_MAX; i++) {
        if (w->ns->workers[i] == w)
            w->ns->workers[i] = NULL;
    }
    free(w);
}

int lqt_worker_wait(lqt_worker *w, int timeout_ms, int64_t *ret_ms)
{
    int64_t start = lqt_now_ms(), deadline = start + timeout_ms;
    int status = 0, code;
    pid_t pid = w->pid, got;

    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && lqt_now_ms() < deadline)
        lqt_sleep_ms(5);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        print_log_tail(w->log_path);
        worker_forget(w);
        ck_abort_msg("worker %d did not exit within %d ms", (int)pid, timeout_ms);
    }
    if (ret_ms)
        *ret_ms = lqt_now_ms() - start;
    code = decode_status(status);
    worker_forget(w);
    return code;
}

bool lqt_worker_running(lqt_worker *w)
{
    int status;
    pid_t got = waitpid(w->pid, &status, WNOHANG);

    if (got == 0)
        return true;
    fprintf(stderr, "lqt: worker %d ended with status %d\n", (int)w->pid, decode_status(status));
    print_log_tail(w->log_path);
    return false;
}

void lqt_worker_kill(lqt_worker *w)
{
    int status;

    ck_assert_msg(kill(w->pid, SIGKILL) == 0, "kill -9 %d: %s", (int)w->pid, strerror(errno));
    waitpid(w->pid, &status, 0);
    worker_forget(w);
}

const char *lqt_worker_log_path(const lqt_worker *w)
{
    return w->log_path;
}

size_t lqt_file_count(const char *path, const char *needle)
{
    char line[8192];
    size_t count = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f))
        count += strstr(line, needle) != NULL;
    fclose(f);
    return count;
}

void lqt_worker_wait_log(lqt_worker *w, const char *needle)
{
    int64_t deadline = lqt_now_ms() + LQT_WAIT_S * 1000;

    while (lqt_file_count(w->log_path, needle) == 0) {
        if (lqt_now_ms() >= deadline) {
            print_log_tail(w->log_path);
            ck_abort_msg("worker %d logged no line with \"%s\" within %d s", (int)w->pid, needle,
                         LQT_WAIT_S);
        }
        lqt_sleep_ms(20);
    }
}

size_t lqt_log_count(const lqt_ns *ns, const char *needle)
{
    char path[600];
    size_t count = 0;

    for (int k = 1; k <= ns->n_workers_started; k++) {
        snprintf(path, sizeof(path), "%s/%sworker-%d.log", log_dir(), ns->prefix, k);
        count += lqt_file_count(path, needle);
    }
    return count;
}

/* ------------------------------------------------------------ publishing in the background */

/* The publisher's exit codes: how many publishes it repeated (capped), or that it gave up. */
#define PUBLISHER_REPEATS_MAX 100
#define PUBLISHER_GAVE_UP     101
#define PUBLISHER_LIMIT_S     300

struct lqt_publisher {
    pid_t pid;
    bool done;
    int status;
};

/* The publisher process: never returns. */
static void publisher_main(lqt_ns *ns, const char *const *files, int pause_ms)
{
    int64_t deadline = lqt_now_ms() + PUBLISHER_LIMIT_S * 1000;
    int repeats = 0;
    char log_path[600];
    int log;

    snprintf(log_path, sizeof(log_path), "%s/%spublisher.log", log_dir(), ns->prefix);
    log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        _exit(PUBLISHER_GAVE_UP);
    for (size_t i = 0; files[i]; i++) {
        for (;;) {
            const char *args[] = {"publish", "--file", files[i], NULL};
            int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC), status = 0;
            pid_t pid = spawn(ns, NULL, args, devnull, log, log);
            close(devnull);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                break;
            dprintf(log, "lqt: publishing %s failed (status %d): again\n", files[i],
                    decode_status(status));
            repeats++;
            if (lqt_now_ms() >= deadline) {
                dprintf(log, "lqt: giving up after %d s\n", PUBLISHER_LIMIT_S);
                _exit(PUBLISHER_GAVE_UP);
            }
            lqt_sleep_ms(250);
        }
        if (pause_ms > 0 && files[i + 1])
            lqt_sleep_ms(pause_ms);
    }
    _exit(repeats > PUBLISHER_REPEATS_MAX ? PUBLISHER_REPEATS_MAX : repeats);
}

lqt_publisher *lqt_publisher_start(lqt_ns *ns, const char *const *files, int pause_ms)
{
    lqt_publisher *p = calloc(1, sizeof(*p));
    pid_t parent = getpid();

    ck_assert_msg(p != NULL, "out of memory");
    fflush(stdout);
    fflush(stderr);
    p->pid = fork();
    ck_assert_msg(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(PUBLISHER_GAVE_UP);
        publisher_main(ns, files, pause_ms);
    }
    return p;
}

bool lqt_publisher_done(lqt_publisher *p)
{
    if (!p->done && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
        p->done = true;
    return p->done;
}

int lqt_publisher_wait(lqt_publisher *p, int timeout_s)
{
    int64_t deadline = lqt_now_ms() + (int64_t)timeout_s * 1000;
    int code;

    while (!lqt_publisher_done(p) && lqt_now_ms() < deadline)
        lqt_sleep_ms(20);
    if (!p->done) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        free(p);
        ck_abort_msg("the publisher did not finish within %d s", timeout_s);
    }
    code = decode_status(p->status);
    free(p);
    ck_assert_msg(code <= PUBLISHER_REPEATS_MAX,
                  "the publisher could not publish everything (status %d): see its log", code);
    return code;
}

/* ------------------------------------------------------------ the stack */

#define STACK_TIMEOUT_S 180

static const char *stack_script(void)
{
    return getenv("LEDGERQ_TEST_STACK_SCRIPT");
}

static const char *stack_dir(void)
{
    return getenv("LEDGERQ_TEST_STACK_DIR");
}

/*
 * Exit 77 with a line saying why unless LEDGERQ_TEST_STACK_SCRIPT and
 * LEDGERQ_TEST_STACK_DIR name the script and folder of the stack the tests
 * use (deploy/local/dev.sh test sets them).
 */
static void stack_or_skip(void)
{
    if (stack_script() == NULL || !*stack_script() || stack_dir() == NULL || !*stack_dir()) {
        printf("skipped: fault tests need LEDGERQ_TEST_STACK_SCRIPT and LEDGERQ_TEST_STACK_DIR "
               "(deploy/local/dev.sh test sets them)\n");
        exit(77);
    }
}

/*
 * Run argv with its output on our stderr, at most timeout_s (then SIGKILL
 * it).  Returns its exit code, or -1 when it did not finish in time.
 */
static int run_program(char *const argv[], int timeout_s)
{
    int64_t deadline = lqt_now_ms() + (int64_t)timeout_s * 1000;
    int status = 0;
    pid_t pid, got;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(2, 1) < 0)
            _exit(127);
        close_range(3, ~0U, 0);
        execv(argv[0], argv);
        dprintf(2, "lqt: could not run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && lqt_now_ms() < deadline)
        lqt_sleep_ms(20);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    return decode_status(status);
}

char *lqt_capture(char *const argv[], int *ret_status)
{
    int fds[2], status = 0;
    size_t len = 0, cap = 8192;
    char *out = malloc(cap);
    pid_t pid;

    *ret_status = -1;
    if (out == NULL || pipe2(fds, O_CLOEXEC) != 0) {
        free(out);
        return NULL;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(fds[1], 1) < 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "could not run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        free(out);
        return NULL;
    }
    for (;;) {
        ssize_t got;
        if (cap - len < 4096) {
            char *more = realloc(out, cap * 2);
            if (more == NULL)
                break;
            out = more;
            cap *= 2;
        }
        got = read(fds[0], out + len, cap - len - 1);
        if (got > 0)
            len += (size_t)got;
        else if (got == 0 || errno != EINTR)
            break;
    }
    close(fds[0]);
    out[len] = '\0';
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *ret_status = decode_status(status);
    return out;
}

void lqt_stack(const char *command, const char *service)
{
    char *argv[] = {(char *)stack_script(), "--dir",         (char *)stack_dir(),
                    (char *)command,        (char *)service, NULL};
    int64_t start = lqt_now_ms();
    int code;

    fprintf(stderr, "lqt: stack.sh %s %s\n", command, service);
    code = run_program(argv, STACK_TIMEOUT_S);
    ck_assert_msg(code == 0, "`stack.sh %s %s` failed (status %d)", command, service, code);
    fprintf(stderr, "lqt: stack.sh %s %s done in %.1f s\n", command, service,
            (double)(lqt_now_ms() - start) / 1000);
}

int lqt_stack_ctl_(bool failing_ok, const char *arg, ...)
{
    char *argv[16] = {(char *)stack_script(), "--dir", (char *)stack_dir(), "ctl"};
    size_t n = 4;
    va_list ap;
    int code;

    va_start(ap, arg);
    for (const char *a = arg; a && n < 15; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    fprintf(stderr, "lqt: rabbitmqctl %s\n", arg);
    code = run_program(argv, STACK_TIMEOUT_S);
    if (!failing_ok)
        ck_assert_msg(code == 0, "`stack.sh ctl %s ...` failed (status %d)", arg, code);
    return code;
}

void lqt_stack_pg_immediate(void)
{
    /* pg_ctl refuses root: run it as the owner of the data folder. */
    static const char script[] =
        "set -e; eval \"$(\"$0\" --dir \"$1\" env)\"; "
        "if [ \"$(id -u)\" = 0 ]; then as='runuser -u postgres --'; else as=''; fi; "
        "$as \"$LEDGERQ_STACK_PG_BIN/pg_ctl\" -D \"$LEDGERQ_STACK_PG_DATA\" -m immediate -w -t 60 "
        "stop";
    char *argv[] = {"/bin/sh",           "-c", (char *)script, (char *)stack_script(),
                    (char *)stack_dir(), NULL};
    int code;

    fprintf(stderr, "lqt: pg_ctl stop -m immediate\n");
    code = run_program(argv, STACK_TIMEOUT_S);
    ck_assert_msg(code == 0, "`pg_ctl stop -m immediate` failed (status %d)", code);
}

/*
 * Start whatever of the stack is down and wait until both services answer.
 * Safe to call at any time, also outside a test (no Check assertions):
 * returns false, with a line on stderr, when the stack cannot be restored.
 */
static bool stack_restore(void)
{
    char *argv[] = {(char *)stack_script(), "--dir", (char *)stack_dir(), "start", NULL};
    int64_t deadline;
    char err[512] = "";
    int code;

    if (stack_script() == NULL || stack_dir() == NULL)
        return false;
    code = run_program(argv, STACK_TIMEOUT_S);
    if (code != 0) {
        fprintf(stderr, "lqt: `stack.sh start` failed (status %d)\n", code);
        return false;
    }
    deadline = lqt_now_ms() + 60 * 1000;
    for (;;) {
        lq_amqp *c = NULL;
        PGconn *pg = PQconnectdb(admin_url());
        bool pg_ok = PQstatus(pg) == CONNECTION_OK;
        bool amqp_ok = amqp_open(&c, err, sizeof(err)) == LQ_OK;

        if (!pg_ok)
            snprintf(err, sizeof(err), "%s", PQerrorMessage(pg));
        PQfinish(pg);
        lq_amqp_close(c);
        if (pg_ok && amqp_ok)
            return true;
        if (lqt_now_ms() >= deadline) {
            fprintf(stderr, "lqt: the stack does not answer after a restart: %s\n", err);
            return false;
        }
        lqt_sleep_ms(200);
    }
}

/* ------------------------------------------------------------ the database */

void lqt_sql(lqt_ns *ns, const char *sql)
{
    PGresult *res = PQexec(ns->db, sql);
    ExecStatusType st = PQresultStatus(res);

    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "SQL failed: %s\n%s",
                  PQerrorMessage(ns->db), sql);
    PQclear(res);
}

char *lqt_sql_value(lqt_ns *ns, const char *sql, const char *param)
{
    PGresult *res = PQexecParams(ns->db, sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
    char *value = NULL;

    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "SQL failed: %s\n%s",
                  PQerrorMessage(ns->db), sql);
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        value = xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return value;
}

void lqt_slow_inserts(lqt_ns *ns, double ms)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION lqt_slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
             "BEGIN PERFORM pg_sleep(%g); RETURN NEW; END $$",
             ms / 1000);
    lqt_sql(ns, sql);
    lqt_sql(ns, "CREATE TRIGGER lqt_slow BEFORE INSERT ON payments FOR EACH ROW "
                "EXECUTE FUNCTION lqt_slow()");
}

void lqt_poison(lqt_ns *ns, const char *id)
{
    char sql[512], *literal = PQescapeLiteral(ns->db, id, strlen(id));

    ck_assert_msg(literal != NULL, "could not quote %s: %s", id, PQerrorMessage(ns->db));
    lqt_sql(ns, "CREATE FUNCTION lqt_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'lqt poison pill %', NEW.id; END $$");
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER lqt_poison BEFORE INSERT ON payments FOR EACH ROW "
             "WHEN (NEW.id = %s) EXECUTE FUNCTION lqt_poison()",
             literal);
    PQfreemem(literal);
    lqt_sql(ns, sql);
}

/* ------------------------------------------------------------ suites */

/* The suite lqt_main() runs, for the fixtures. */
static const lqt_suite *running;
/* When the running case started, for lqt_step(). */
static int64_t case_start_ms;

void lqt_step(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "[%6.1f s] ", (double)(lqt_now_ms() - case_start_ms) / 1000);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void start_clock(void)
{
    case_start_ms = lqt_now_ms();
}

static void ns_setup(void)
{
    *running->ns = lqt_ns_create();
}

static void ns_teardown(void)
{
    lqt_ns_destroy(*running->ns);
    *running->ns = NULL;
}

static void restore_stack(void)
{
    /* In the runner after each case, also when it failed. */
    if (!stack_restore())
        fprintf(stderr, "lqt: could not restore the test stack\n");
}

/* Exit 1 unless CK_RUN_CASE, when set, names one of the cases. */
static void check_run_case(const lqt_suite *suite, const lqt_case *cases, size_t n_cases)
{
    const char *name = getenv("CK_RUN_CASE");

    if (name == NULL || *name == '\0')
        return;
    for (size_t i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].name, name) == 0)
            return;
    }
    printf("CK_RUN_CASE=%s: suite %s has no such case; it has", name, suite->name);
    for (size_t i = 0; i < n_cases; i++)
        printf(" %s", cases[i].name);
    printf("\n");
    exit(1);
}

int lqt_main(const lqt_suite *suite, const lqt_case *cases, size_t n_cases)
{
    Suite *s = suite_create(suite->name);
    SRunner *sr;
    int failed;

    check_run_case(suite, cases, n_cases);
    env_or_skip();
    if (suite->stops_stack)
        stack_or_skip();
    if (suite->prepare)
        suite->prepare();
    init();
    running = suite;
    for (size_t i = 0; i < n_cases; i++) {
        const lqt_case *c = &cases[i];
        TCase *tc = tcase_create(c->name);

        /* Teardowns run in the reverse order of their adding: the stack is back before c->after. */
        if (c->after)
            tcase_add_unchecked_fixture(tc, NULL, c->after);
        if (suite->stops_stack)
            tcase_add_unchecked_fixture(tc, NULL, restore_stack);
        tcase_add_checked_fixture(tc, start_clock, NULL);
        if (suite->ns)
            tcase_add_checked_fixture(tc, ns_setup, ns_teardown);
        tcase_set_timeout(tc, c->timeout_s ? c->timeout_s : suite->timeout_s);
        tcase_add_test(tc, c->test);
        suite_add_tcase(s, tc);
    }
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (suite->stops_stack)
        restore_stack();
    sweep();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
