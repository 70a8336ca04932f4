/*
 * TLS tests: the real `ledgerq` binary over amqps:// to RabbitMQ's TLS
 * listener and over libpq's sslmode=verify-full to PostgreSQL, with the
 * test certificates that deploy/local/stack.sh makes with openssl in its
 * stack dir (a private CA, a server certificate for "localhost" only, a
 * client certificate, an unrelated CA; `stack.sh env` names them).
 *
 * What a user must be able to rely on: the broker and the database are
 * verified (chain and host name), a client certificate works, and a wrong
 * CA, a wrong host name or half a client certificate fails with exit 1 and
 * one line that says what to check.
 *
 * Skipped (exit 77) without LEDGERQ_TEST_STACK_SCRIPT and
 * LEDGERQ_TEST_STACK_DIR, or when the stack has no TLS certificates (a stack
 * dir made before TLS: `stack.sh start --fresh` makes them).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "support.h"

#define TIMEOUT_S 120

/* What `stack.sh env` says about the stack's TLS. */
static struct {
    const char *script, *dir;
    int amqps_port;
    char tls_dir[1024], ca[1024], wrong_ca[1024], client_cert[1024], client_key[1024];
    char pg_port[16], pg_user[128];
} stack;

/* The running case's namespace (lqt_suite.ns). */
static lqt_ns *ns;

/* ------------------------------------------------------------ helpers */

/* The value of `export NAME=value` in env_text, shell quoting undone; false when absent. */
static bool export_value(const char *env_text, const char *name, char *ret, size_t ret_len)
{
    char key[128];
    const char *line = env_text;
    size_t key_len = (size_t)snprintf(key, sizeof(key), "export %s=", name);

    while (line && *line) {
        if (strncmp(line, key, key_len) == 0) {
            const char *p = line + key_len;
            size_t n = 0;
            bool quoted = false;
            for (; *p && *p != '\n' && n + 1 < ret_len; p++) {
                if (*p == '\'') {
                    quoted = !quoted;
                } else if (*p == '\\' && !quoted && p[1]) {
                    ret[n++] = *++p;
                } else {
                    ret[n++] = *p;
                }
            }
            ret[n] = '\0';
            return true;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return false;
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static bool port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Exit 77 unless the test stack has TLS; fill `stack` from `stack.sh env`. */
static void tls_or_skip(void)
{
    char *argv[5], port[16];
    char *env_text, *errmsg = NULL;
    int status;
    PQconninfoOption *opts;

    stack.script = getenv("LEDGERQ_TEST_STACK_SCRIPT");
    stack.dir = getenv("LEDGERQ_TEST_STACK_DIR");
    if (stack.script == NULL || !*stack.script || stack.dir == NULL || !*stack.dir) {
        printf("skipped: the TLS tests need LEDGERQ_TEST_STACK_SCRIPT and LEDGERQ_TEST_STACK_DIR "
               "(deploy/local/dev.sh test sets them)\n");
        exit(77);
    }
    argv[0] = (char *)stack.script;
    argv[1] = "--dir";
    argv[2] = (char *)stack.dir;
    argv[3] = "env";
    argv[4] = NULL;
    env_text = lqt_capture(argv, &status);
    if (env_text == NULL || status != 0) {
        printf("`%s --dir %s env` failed (status %d)\n", stack.script, stack.dir, status);
        exit(1);
    }
    if (!export_value(env_text, "LEDGERQ_STACK_TLS_DIR", stack.tls_dir, sizeof(stack.tls_dir))) {
        printf("skipped: the stack in %s has no TLS certificates (a stack dir from before TLS: "
               "stack.sh start --fresh makes them)\n",
               stack.dir);
        free(env_text);
        exit(77);
    }
    if (!export_value(env_text, "LEDGERQ_STACK_AMQPS_PORT", port, sizeof(port)) ||
        !export_value(env_text, "LEDGERQ_STACK_TLS_CA_FILE", stack.ca, sizeof(stack.ca)) ||
        !export_value(env_text, "LEDGERQ_STACK_TLS_WRONG_CA_FILE", stack.wrong_ca,
                      sizeof(stack.wrong_ca)) ||
        !export_value(env_text, "LEDGERQ_STACK_TLS_CLIENT_CERT_FILE", stack.client_cert,
                      sizeof(stack.client_cert)) ||
        !export_value(env_text, "LEDGERQ_STACK_TLS_CLIENT_KEY_FILE", stack.client_key,
                      sizeof(stack.client_key))) {
        printf("`stack.sh env` names a TLS dir but not all of LEDGERQ_STACK_AMQPS_PORT and the "
               "TLS files:\n%s",
               env_text);
        exit(1);
    }
    free(env_text);
    stack.amqps_port = atoi(port);
    if (!port_open(stack.amqps_port)) {
        printf("the stack in %s has TLS certificates but nothing listens on 127.0.0.1:%d (started "
               "before TLS? restart it: stack.sh start --fresh)\n",
               stack.dir, stack.amqps_port);
        exit(1);
    }

    /* The TLS connections go to the database server of the admin URL, by host name. */
    opts = PQconninfoParse(getenv("LEDGERQ_TEST_DATABASE_URL"), &errmsg);
    if (opts == NULL) {
        printf("LEDGERQ_TEST_DATABASE_URL does not parse: %s\n", errmsg ? errmsg : "out of memory");
        exit(1);
    }
    snprintf(stack.pg_port, sizeof(stack.pg_port), "5432");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val && *o->val && strcmp(o->keyword, "port") == 0)
            snprintf(stack.pg_port, sizeof(stack.pg_port), "%s", o->val);
        if (o->val && *o->val && strcmp(o->keyword, "user") == 0)
            snprintf(stack.pg_user, sizeof(stack.pg_user), "%s", o->val);
    }
    PQconninfoFree(opts);
}

/* A NULL-terminated list of "NAME=value" for lqt_run_env() and lqt_worker_start(). */
typedef struct envs {
    char v[8][2048];
    const char *p[9];
    int n;
} envs;

static void env_add(envs *e, const char *name, const char *value)
{
    ck_assert_int_lt(e->n, 8);
    snprintf(e->v[e->n], sizeof(e->v[e->n]), "%s=%s", name, value);
    e->p[e->n] = e->v[e->n];
    e->n++;
    e->p[e->n] = NULL;
}

/* amqps:// to the stack's TLS listener by host (a name or an address). */
static void env_amqps(envs *e, const char *host)
{
    char url[256];

    snprintf(url, sizeof(url), "amqps://guest:guest@%s:%d/%%2f", host, stack.amqps_port);
    env_add(e, "LEDGERQ_AMQP_URL", url);
}

/*
 * conninfo of the namespace database over TLS: host name host (connecting
 * to 127.0.0.1 whatever the name resolves to, so that only the certificate
 * check differs), sslmode, the CA file, and a client certificate when
 * client_cert.
 */
static void pg_tls_url(char *buf, size_t len, const char *host, const char *sslmode, const char *ca,
                       bool client_cert)
{
    buf[0] = '\0';
    lqt_conninfo_add(buf, len, "host", host);
    lqt_conninfo_add(buf, len, "hostaddr", "127.0.0.1");
    lqt_conninfo_add(buf, len, "port", stack.pg_port);
    lqt_conninfo_add(buf, len, "dbname", ns->db_name);
    if (stack.pg_user[0])
        lqt_conninfo_add(buf, len, "user", stack.pg_user);
    lqt_conninfo_add(buf, len, "sslmode", sslmode);
    lqt_conninfo_add(buf, len, "sslrootcert", ca);
    if (client_cert) {
        lqt_conninfo_add(buf, len, "sslcert", stack.client_cert);
        lqt_conninfo_add(buf, len, "sslkey", stack.client_key);
    }
}

/* Run `ledgerq topology` with env; returns its exit code, output in *o. */
static int topology(const envs *e, lqt_output *o)
{
    return lqt_run_env(ns, e->p, o, "topology", NULL);
}

/* One payment of amount from bank to alice, applied by whatever worker runs. */
static void expect_applied(lqt_listener *l, const char *id, int64_t amount)
{
    char body[256];
    const lqt_event *e;
    lqt_payment p;
    char err[512];

    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":%lld,"
             "\"currency\":\"EUR\"}",
             id, (long long)amount);
    lqt_pay(ns, body);
    lqt_wait_events(l, lqt_event_count(l) + 1);
    e = lqt_event_find(l, id, 0);
    ck_assert_msg(e != NULL, "no result event for %s", id);
    ck_assert_msg(strcmp(e->status, "applied") == 0, "%s: %s", id, e->body);
    ck_assert_msg(lqt_payment_show(ns, id, &p, err) == 0, "payment show %s: %s", id, err);
    ck_assert_str_eq(p.status, "applied");
    ck_assert_uint_eq(p.n_legs, 1);
    ck_assert_int_eq(p.legs[0].amount, amount);
}

static void open_accounts(void)
{
    lqt_run_ok(ns, "account", "open", "bank", "--currency", "EUR", "--allow-negative");
    lqt_run_ok(ns, "account", "open", "alice", "--currency", "EUR");
}

/*
 * What the broker says of its TLS connections now: one line per
 * connection, "port ssl ssl_protocol peer_cert_subject" (caller frees).
 */
static char *broker_tls_connections(void)
{
    char *argv[] = {(char *)stack.script,
                    "--dir",
                    (char *)stack.dir,
                    "ctl",
                    "-q",
                    "list_connections",
                    "port",
                    "ssl",
                    "ssl_protocol",
                    "peer_cert_subject",
                    NULL};
    int status;
    char *out = lqt_capture(argv, &status);

    ck_assert_msg(out != NULL && status == 0, "rabbitmqctl list_connections failed (status %d)",
                  status);
    return out;
}

/* ------------------------------------------------------------ 1. amqps:// end to end */

/* How many connections ledgerq has to the namespace database (append conditions on s, a). */
#define WORKER_CONNECTIONS                                                                         \
    "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "                      \
    "WHERE a.datname = current_database() AND a.application_name = 'ledgerq'"

START_TEST(test_amqps)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_output o;
    lqt_worker *w;
    envs e = {.n = 0};
    char db_url[4096], *count;
    const char *path;
    char path_copy[1024];

    env_amqps(&e, "localhost");
    env_add(&e, "LEDGERQ_AMQP_CA_FILE", stack.ca);

    /* The CLI over TLS: declarations and publishing with confirms. */
    ck_assert_msg(topology(&e, &o) == 0, "topology over amqps:// exited %d: %s", o.status, o.err);
    ck_assert_msg(strstr(o.out, "declared") != NULL, "topology printed: %s", o.out);
    lqt_output_release(&o);
    open_accounts();
    path = lqt_write_file(ns, "tls-pay.jsonl",
                          "{\"id\":\"tls-1\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":"
                          "1250,\"currency\":\"EUR\"}\n");
    snprintf(path_copy, sizeof(path_copy), "%s", path);
    lqt_run_env(ns, e.p, &o, "publish", "--file", path_copy, NULL);
    ck_assert_msg(o.status == 0, "publish over amqps:// exited %d: %s", o.status, o.err);
    ck_assert_msg(strstr(o.out, "confirmed 1") != NULL, "publish printed: %s", o.out);
    lqt_output_release(&o);

    /* A worker with TLS on both sides: amqps:// and sslmode=verify-full. */
    pg_tls_url(db_url, sizeof(db_url), "localhost", "verify-full", stack.ca, false);
    env_add(&e, "LEDGERQ_DATABASE_URL", db_url);
    w = lqt_worker_start(ns, e.p);
    lqt_wait_events(l, 1);
    {
        const lqt_event *ev = lqt_event_find(l, "tls-1", 0);
        lqt_payment p;
        char err[512];
        ck_assert_msg(ev != NULL && strcmp(ev->status, "applied") == 0, "tls-1: %s",
                      ev ? ev->body : "no event");
        ck_assert_msg(lqt_payment_show(ns, "tls-1", &p, err) == 0, "payment show: %s", err);
        ck_assert_str_eq(p.status, "applied");
        ck_assert_int_eq(p.legs[0].amount, 1250);
        ck_assert_str_eq(p.processed_at, ev->processed_at);
    }
    ck_assert_int_eq(lqt_balance(ns, "alice"), 1250);
    expect_applied(l, "tls-2", 250);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 1500);

    /* The worker's database connections are TLS ones, all of them. */
    count = lqt_sql_value(ns, WORKER_CONNECTIONS " AND s.ssl", NULL);
    ck_assert_msg(count != NULL && strcmp(count, "0") != 0, "the worker has no TLS connection");
    free(count);
    count = lqt_sql_value(ns, WORKER_CONNECTIONS " AND NOT s.ssl", NULL);
    ck_assert_msg(count != NULL && strcmp(count, "0") == 0,
                  "the worker has %s connections without TLS", count ? count : "?");
    free(count);

    lqt_run_env(ns, e.p, &o, "audit", NULL);
    ck_assert_msg(o.status == 0, "audit over TLS exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
}
END_TEST

/* ------------------------------------------------------------ 2. a CA that did not sign the
 * broker's certificate */

START_TEST(test_amqps_wrong_ca)
{
    lqt_output o;
    lqt_worker *w;
    envs e = {.n = 0}, sys = {.n = 0};
    const char *path;
    char path_copy[1024];
    const char *needles[] = {"over TLS", "certificate verification failed", stack.wrong_ca,
                             "LEDGERQ_AMQP_CA_FILE", NULL};
    const char *sys_needles[] = {"over TLS", "certificate verification failed",
                                 "/etc/ssl/certs/ca-certificates.crt", NULL};

    env_amqps(&e, "localhost");
    env_add(&e, "LEDGERQ_AMQP_CA_FILE", stack.wrong_ca);
    topology(&e, &o);
    lqt_expect_failure(&o, 1, "topology with the wrong CA", needles);
    lqt_output_release(&o);

    /* Nothing is published through an unverified broker. */
    open_accounts();
    path = lqt_write_file(ns, "tls-pay.jsonl",
                          "{\"id\":\"tls-x\",\"debit\":\"bank\",\"credit\":\"alice\",\"amount\":1,"
                          "\"currency\":\"EUR\"}\n");
    snprintf(path_copy, sizeof(path_copy), "%s", path);
    lqt_run_env(ns, e.p, &o, "publish", "--file", path_copy, NULL);
    lqt_expect_failure(&o, 1, "publish with the wrong CA", needles);
    lqt_output_release(&o);
    ck_assert_uint_eq(lqt_queue_ready(ns, ns->queue, NULL), 0);

    /* Without LEDGERQ_AMQP_CA_FILE: the system's CAs, which do not know the stack's. */
    env_amqps(&sys, "localhost");
    topology(&sys, &o);
    lqt_expect_failure(&o, 1, "topology with the system's CAs", sys_needles);
    lqt_output_release(&o);

    /* A worker keeps trying (the broker counts as unreachable) and says why. */
    w = lqt_worker_start(ns, e.p);
    lqt_worker_wait_log(w, "certificate verification failed");
    ck_assert_msg(lqt_worker_running(w), "the worker exited instead of retrying");
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 0);
}
END_TEST

/* ------------------------------------------------------------ 3. a host name the certificate does
 * not list */

START_TEST(test_amqps_host_name)
{
    lqt_output o;
    envs ip = {.n = 0}, name = {.n = 0};
    const char *needles[] = {"over TLS", "host name verification failed", "\"127.0.0.1\"", NULL};

    /* The certificate names "localhost" and no IP address. */
    env_amqps(&ip, "127.0.0.1");
    env_add(&ip, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    topology(&ip, &o);
    lqt_expect_failure(&o, 1, "topology to 127.0.0.1", needles);
    lqt_output_release(&o);
    lqt_run_env(ns, ip.p, &o, "dlq", "stats", NULL);
    lqt_expect_failure(&o, 1, "dlq stats to 127.0.0.1", needles);
    lqt_output_release(&o);

    /* The same broker and CA by the name the certificate lists. */
    env_amqps(&name, "localhost");
    env_add(&name, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    ck_assert_msg(topology(&name, &o) == 0, "topology to localhost exited %d: %s", o.status, o.err);
    lqt_output_release(&o);
}
END_TEST

/* ------------------------------------------------------------ 4. client certificates */

START_TEST(test_amqps_client_cert)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_output o;
    lqt_worker *w, *half;
    envs both = {.n = 0}, cert = {.n = 0}, key = {.n = 0}, alien = {.n = 0}, locked = {.n = 0};
    char *conns, line_want[128], alien_cert[1024], alien_key[1024], locked_key[1024];
    const char *cert_needles[] = {"LEDGERQ_AMQP_CERT_FILE", "LEDGERQ_AMQP_KEY_FILE", NULL};
    const char *alien_needles[] = {"TLS", "client certificate", NULL};
    const char *locked_needles[] = {"could not load the client certificate", "not encrypted", NULL};
    bool found = false;
    int status;

    env_amqps(&both, "localhost");
    env_add(&both, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    env_add(&both, "LEDGERQ_AMQP_CERT_FILE", stack.client_cert);
    env_add(&both, "LEDGERQ_AMQP_KEY_FILE", stack.client_key);
    ck_assert_msg(topology(&both, &o) == 0, "topology with a client certificate exited %d: %s",
                  o.status, o.err);
    lqt_output_release(&o);

    /* A worker presents it; the broker verified it (verify_peer) and shows its subject. */
    open_accounts();
    w = lqt_worker_start(ns, both.p);
    expect_applied(l, "cert-1", 700);
    conns = broker_tls_connections();
    snprintf(line_want, sizeof(line_want), "%d\ttrue\ttlsv1.", stack.amqps_port);
    for (char *line = strtok(conns, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, line_want, strlen(line_want)) == 0 &&
            strstr(line, "CN=ledgerq-test-client") != NULL)
            found = true;
    }
    ck_assert_msg(found, "the broker lists no TLS connection with the client certificate");
    free(conns);
    ck_assert_int_eq(lqt_worker_stop(w), 0);

    /* Half a client certificate is a configuration error, for every command. */
    env_amqps(&cert, "localhost");
    env_add(&cert, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    env_add(&cert, "LEDGERQ_AMQP_CERT_FILE", stack.client_cert);
    topology(&cert, &o);
    lqt_expect_failure(&o, 1, "topology with a certificate and no key", cert_needles);
    lqt_output_release(&o);
    env_amqps(&key, "localhost");
    env_add(&key, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    env_add(&key, "LEDGERQ_AMQP_KEY_FILE", stack.client_key);
    topology(&key, &o);
    lqt_expect_failure(&o, 1, "topology with a key and no certificate", cert_needles);
    lqt_output_release(&o);
    /* The worker stops at start rather than retrying. */
    half = lqt_worker_start(ns, cert.p);
    ck_assert_int_eq(lqt_worker_wait(half, LQT_WAIT_S * 1000, NULL), 1);
    ck_assert_uint_gt(lqt_log_count(ns, "is set without LEDGERQ_AMQP_KEY_FILE"), 0);

    /* A certificate of another CA, made here: the broker refuses it. */
    snprintf(alien_cert, sizeof(alien_cert), "%s", lqt_write_file(ns, "alien.pem", ""));
    snprintf(alien_key, sizeof(alien_key), "%s", lqt_write_file(ns, "alien.key", ""));
    {
        char *argv[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-days",
                        "1",
                        "-subj",
                        "/CN=not-from-the-stack-ca",
                        "-keyout",
                        alien_key,
                        "-out",
                        alien_cert,
                        NULL};
        free(lqt_capture(argv, &status));
        ck_assert_msg(status == 0, "openssl req failed (status %d)", status);
    }
    env_amqps(&alien, "localhost");
    env_add(&alien, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    env_add(&alien, "LEDGERQ_AMQP_CERT_FILE", alien_cert);
    env_add(&alien, "LEDGERQ_AMQP_KEY_FILE", alien_key);
    topology(&alien, &o);
    lqt_expect_failure(&o, 1, "topology with a client certificate of another CA", alien_needles);
    lqt_output_release(&o);

    /* A key with a passphrase: one clear line, no prompt for the passphrase. */
    snprintf(locked_key, sizeof(locked_key), "%s", lqt_write_file(ns, "locked.key", ""));
    {
        char *argv[] = {"openssl",  "pkey",        "-in",  stack.client_key, "-aes256",
                        "-passout", "pass:secret", "-out", locked_key,       NULL};
        free(lqt_capture(argv, &status));
        ck_assert_msg(status == 0, "openssl pkey failed (status %d)", status);
    }
    env_amqps(&locked, "localhost");
    env_add(&locked, "LEDGERQ_AMQP_CA_FILE", stack.ca);
    env_add(&locked, "LEDGERQ_AMQP_CERT_FILE", stack.client_cert);
    env_add(&locked, "LEDGERQ_AMQP_KEY_FILE", locked_key);
    topology(&locked, &o);
    lqt_expect_failure(&o, 1, "topology with an encrypted client key", locked_needles);
    lqt_output_release(&o);
}
END_TEST

/* ------------------------------------------------------------ 5. PostgreSQL over TLS */

START_TEST(test_pg_tls)
{
    lqt_listener *l = lqt_listen(ns);
    lqt_output o;
    lqt_worker *w;
    envs e = {.n = 0}, uri = {.n = 0}, cert = {.n = 0};
    char url[4096], uri_url[4096], *value;
    PGconn *conn;
    PGresult *res;

    pg_tls_url(url, sizeof(url), "localhost", "verify-full", stack.ca, false);
    env_add(&e, "LEDGERQ_DATABASE_URL", url);
    lqt_run_env(ns, e.p, &o, "migrate", NULL);
    ck_assert_msg(o.status == 0, "migrate over TLS exited %d: %s", o.status, o.err);
    lqt_output_release(&o);
    lqt_run_env(ns, e.p, &o, "account", "open", "bank", "--currency", "EUR", "--allow-negative",
                NULL);
    ck_assert_msg(o.status == 0, "account open over TLS exited %d: %s", o.status, o.err);
    lqt_output_release(&o);
    lqt_run_env(ns, e.p, &o, "account", "open", "alice", "--currency", "EUR", NULL);
    ck_assert_msg(o.status == 0, "account open over TLS exited %d: %s", o.status, o.err);
    lqt_output_release(&o);
    lqt_run_env(ns, e.p, &o, "account", "show", "alice", "--json", NULL);
    ck_assert_msg(o.status == 0 && strstr(o.out, "\"alice\""), "account show over TLS: %d %s%s",
                  o.status, o.out, o.err);
    lqt_output_release(&o);
    lqt_run_env(ns, e.p, &o, "audit", NULL);
    ck_assert_msg(o.status == 0, "audit over TLS exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);

    /* The same as a URI. */
    snprintf(uri_url, sizeof(uri_url),
             "postgresql://%s%slocalhost:%s/%s?hostaddr=127.0.0.1&sslmode=verify-full&"
             "sslrootcert=%s",
             stack.pg_user, stack.pg_user[0] ? "@" : "", stack.pg_port, ns->db_name, stack.ca);
    env_add(&uri, "LEDGERQ_DATABASE_URL", uri_url);
    lqt_run_env(ns, uri.p, &o, "audit", NULL);
    ck_assert_msg(o.status == 0, "audit over TLS (URI) exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);

    /* Such a connection is a TLS one, as the server sees it. */
    conn = PQconnectdb(url);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "libpq with %s: %s", url, PQerrorMessage(conn));
    res = PQexec(conn, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "pg_stat_ssl: %s",
                  PQerrorMessage(conn));
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
    ck_assert_msg(strncmp(PQgetvalue(res, 0, 1), "TLSv1.", 6) == 0 &&
                      strcmp(PQgetvalue(res, 0, 1), "TLSv1.1") != 0,
                  "TLS version %s", PQgetvalue(res, 0, 1));
    PQclear(res);
    PQfinish(conn);

    /* A worker with a client certificate (libpq's sslcert, sslkey): the server verified it. */
    pg_tls_url(url, sizeof(url), "localhost", "verify-full", stack.ca, true);
    env_add(&cert, "LEDGERQ_DATABASE_URL", url);
    w = lqt_worker_start(ns, cert.p);
    expect_applied(l, "pg-tls-1", 42);
    value = lqt_sql_value(ns, WORKER_CONNECTIONS " AND s.ssl AND s.client_dn LIKE '%test-client%'",
                          NULL);
    ck_assert_msg(value != NULL && strcmp(value, "0") != 0,
                  "no TLS connection of the worker with the client certificate");
    free(value);
    ck_assert_int_eq(lqt_worker_stop(w), 0);
    ck_assert_int_eq(lqt_balance(ns, "alice"), 42);
}
END_TEST

/* ------------------------------------------------------------ 6. PostgreSQL: wrong CA, wrong host
 * name */

START_TEST(test_pg_tls_errors)
{
    lqt_output o;
    envs wrong = {.n = 0}, ip = {.n = 0}, ca_only = {.n = 0};
    char url[4096], ip_url[4096], ca_url[4096];
    const char *ca_needles[] = {"could not connect to the database", "certificate", NULL};
    const char *host_needles[] = {"could not connect to the database", "host name", "127.0.0.1",
                                  NULL};

    pg_tls_url(url, sizeof(url), "localhost", "verify-full", stack.wrong_ca, false);
    env_add(&wrong, "LEDGERQ_DATABASE_URL", url);
    lqt_run_env(ns, wrong.p, &o, "audit", NULL);
    lqt_expect_failure(&o, 1, "audit with the wrong CA", ca_needles);
    lqt_output_release(&o);
    lqt_run_env(ns, wrong.p, &o, "account", "open", "x", "--currency", "EUR", NULL);
    lqt_expect_failure(&o, 1, "account open with the wrong CA", ca_needles);
    lqt_output_release(&o);

    /* verify-full checks the host name: the certificate names "localhost" only. */
    pg_tls_url(ip_url, sizeof(ip_url), "127.0.0.1", "verify-full", stack.ca, false);
    env_add(&ip, "LEDGERQ_DATABASE_URL", ip_url);
    lqt_run_env(ns, ip.p, &o, "migrate", NULL);
    lqt_expect_failure(&o, 1, "migrate to 127.0.0.1 with verify-full", host_needles);
    lqt_output_release(&o);

    /* verify-ca checks the chain only: the same address is accepted. */
    pg_tls_url(ca_url, sizeof(ca_url), "127.0.0.1", "verify-ca", stack.ca, false);
    env_add(&ca_only, "LEDGERQ_DATABASE_URL", ca_url);
    lqt_run_env(ns, ca_only.p, &o, "audit", NULL);
    ck_assert_msg(o.status == 0, "audit with verify-ca exited %d: %s%s", o.status, o.out, o.err);
    lqt_output_release(&o);

    /* Nothing was written through the failed connections. */
    ck_assert_ptr_null(lqt_sql_value(ns, "SELECT id FROM accounts WHERE id = 'x'", NULL));
}
END_TEST

/* ------------------------------------------------------------ the suite */

int main(void)
{
    const lqt_suite suite = {
        .name = "tls", .timeout_s = TIMEOUT_S, .ns = &ns, .prepare = tls_or_skip};
    const lqt_case cases[] = {
        LQT_CASE("amqps", test_amqps),
        LQT_CASE("amqps_wrong_ca", test_amqps_wrong_ca),
        LQT_CASE("amqps_host_name", test_amqps_host_name),
        LQT_CASE("amqps_client_cert", test_amqps_client_cert),
        LQT_CASE("pg_tls", test_pg_tls),
        LQT_CASE("pg_tls_errors", test_pg_tls_errors),
    };

    return LQT_MAIN(suite, cases);
}
