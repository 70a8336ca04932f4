/*
 * The integration test harness: a real RabbitMQ and PostgreSQL, the real
 * `ledgerq` binary.
 *
 * The stack comes from LEDGERQ_TEST_AMQP_URL and LEDGERQ_TEST_DATABASE_URL
 * (deploy/local/dev.sh test sets both); without them the test program exits
 * 77, which meson reports as skipped.  The binary is LEDGERQ_BIN.
 *
 * Every test case works in its own namespace (lqt_ns): a fresh database
 * created through the admin URL and its own exchange and queue names, so
 * that suites can run in parallel against one broker and one server.  The
 * CLI and the workers the harness starts see only the namespace, through
 * the LEDGERQ_* environment.
 *
 * Helpers that wait are bounded and fail the test (Check's ck_assert) with
 * a message saying what was awaited and what came, plus the tail of every
 * worker log of the namespace.  Worker logs are kept under
 * LEDGERQ_TEST_LOG_DIR (default /tmp) and removed when the test case passes.
 *
 * Check runs each test in a forked child that ends with _exit() on a failed
 * assertion, skipping teardown: the children the harness starts die with it
 * (PR_SET_PDEATHSIG), and lqt_main() in the runner drops the databases and
 * deletes the broker objects that failed tests left behind.
 */
#ifndef LEDGERQ_TESTS_SUPPORT_H
#define LEDGERQ_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <check.h>
#include <libpq-fe.h>

#include "ledgerq/amqp.h"

struct cJSON;

/* Longest wait for anything the tests expect to happen, in seconds. */
#define LQT_WAIT_S 30

/* An lqt_msg content type meaning "no content_type property at all". */
#define LQT_NO_CONTENT_TYPE "\001none"

#define LQT_WORKERS_MAX   8
#define LQT_LISTENERS_MAX 8

typedef struct lqt_worker lqt_worker;
typedef struct lqt_listener lqt_listener;

/* One test case's world. */
typedef struct lqt_ns {
    char prefix[64];  /* "t<pid>.<n>.", also names the worker logs */
    char db_name[64]; /* "lqt_<runner pid>_<pid>_<n>" */
    char *db_url;     /* conninfo of the namespace database, owned */
    char exchange[128];
    char queue[128];
    char results_exchange[128];
    char dlx[128];
    char dlq[128];
    lq_amqp *amqp; /* the harness's own connection: publishing, basic.get */
    PGconn *db;    /* the harness's own connection to the namespace database */
    lqt_worker *workers[LQT_WORKERS_MAX];
    lqt_listener *listeners[LQT_LISTENERS_MAX];
    int n_workers_started; /* names the worker logs */
    char **env;            /* "NAME=value" for every child, NULL-terminated; owned */
} lqt_ns;

/* ------------------------------------------------------------ suites */

/*
 * One case of a suite.  tests/meson.build reads the suite's source and
 * registers one meson test "<suite>-<name>", run with CK_RUN_CASE=<name>,
 * for every LQT_CASE("<name>", ...) in it: the name is the first argument,
 * a string literal of letters, digits and underscores, and "LQT_CASE("
 * appears nowhere else in the file.  So a case added in C alone runs.
 */
typedef struct lqt_case {
    const char *name;
    const TTest *test;
    int timeout_s;       /* Check's limit for the case; 0: the suite's */
    void (*after)(void); /* run in the runner after the case, passed or failed; may be NULL */
} lqt_case;

/* LQT_CASE("name", test), or with fields set: LQT_CASE("name", test, .timeout_s = 400). */
#define LQT_CASE(name_, ...)                                                                       \
    {                                                                                              \
        .name = name_, .test = __VA_ARGS__                                                         \
    }

/* How a suite's cases run. */
typedef struct lqt_suite {
    const char *name;
    int timeout_s; /* Check's limit for each case */
    /*
     * Non-NULL: every case gets a namespace of its own there, made before
     * it and destroyed when it passed (lqt_ns_create(), lqt_ns_destroy()).
     */
    lqt_ns **ns;
    /*
     * The cases stop and kill the test stack's services: the suite is
     * skipped without LEDGERQ_TEST_STACK_SCRIPT and LEDGERQ_TEST_STACK_DIR,
     * and the stack is restored after every case, passed or failed.
     */
    bool stops_stack;
    /* Called before the run (after the skip checks); may exit 77 itself.  May be NULL. */
    void (*prepare)(void);
} lqt_suite;

/*
 * The whole main() of a suite: exit 77 (skipped) when the test stack is not
 * configured, run the cases (the one CK_RUN_CASE names, or all; a name
 * that is not a case is an error), then remove what failed cases left
 * behind.  Returns the exit status.
 */
int lqt_main(const lqt_suite *suite, const lqt_case *cases, size_t n_cases);

#define LQT_MAIN(suite, cases) lqt_main(&(suite), (cases), sizeof(cases) / sizeof((cases)[0]))

/*
 * Log a step of the running case on stderr with the seconds since it
 * started: meson shows them when the case fails.
 */
void lqt_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A monotonic clock in milliseconds. */
int64_t lqt_now_ms(void);

/* Sleep ms milliseconds (signals do not cut it short). */
void lqt_sleep_ms(int ms);

/*
 * A connection to the broker of the test's own, opened as the product opens
 * one (closing it gives back what it took unacked).  Fails the test when it
 * cannot connect.  Close with lq_amqp_close().
 */
lq_amqp *lqt_amqp_connect(void);

/* ------------------------------------------------------------ namespaces */

/*
 * Create a database and names, run `ledgerq migrate` and `ledgerq topology`
 * in them, connect the harness.  Fails the test on any error.  Release with
 * lqt_ns_destroy().
 */
lqt_ns *lqt_ns_create(void);

/*
 * lqt_ns_create() whose commands and workers all see env too (a
 * NULL-terminated "NAME=value" list, e.g. LEDGERQ_DELIVERY_LIMIT=3; may be
 * NULL), `ledgerq topology` included.
 */
lqt_ns *lqt_ns_create_env(const char *const *env);

/*
 * Connect the harness again (ns->amqp and ns->db), after the broker or the
 * database restarted: retries for at most LQT_WAIT_S seconds, then fails
 * the test.
 */
void lqt_ns_reconnect(lqt_ns *ns);

/*
 * Kill the workers still running, free the listeners, delete the queues and
 * exchanges, drop the database (WITH (FORCE)), delete the worker logs.
 * Accepts NULL.
 */
void lqt_ns_destroy(lqt_ns *ns);

/* ------------------------------------------------------------ the CLI */

/*
 * Run the `ledgerq` at path, instead of LEDGERQ_BIN, in every later command,
 * worker and namespace setup (the upgrade tests run an earlier release);
 * NULL goes back to LEDGERQ_BIN.  path is borrowed and must outlive its use.
 */
void lqt_use_binary(const char *path);

/* What a command printed, and how it ended. */
typedef struct lqt_output {
    int status; /* exit code, or 128 + signal when killed */
    char *out;  /* stdout, NUL-terminated, owned */
    size_t out_len;
    char *err; /* stderr, NUL-terminated, owned */
} lqt_output;

void lqt_output_release(lqt_output *o);

/*
 * Run `ledgerq ARG...` (NULL-terminated) in ns's environment plus env (a
 * NULL-terminated list of "NAME=value", overriding; may be NULL), with
 * stdin from /dev/null.  Fails the test if it runs longer than 60 s.
 * Returns ret->status.
 */
int lqt_run_env(lqt_ns *ns, const char *const *env, lqt_output *ret, const char *arg, ...)
    __attribute__((sentinel));

#define lqt_run(ns, ret, ...) lqt_run_env((ns), NULL, (ret), __VA_ARGS__, (const char *)NULL)

/* lqt_run_env() with the arguments in an array (NULL-terminated). */
int lqt_run_argv(lqt_ns *ns, const char *const *env, lqt_output *ret, const char *const *args);

/* Run a command that must exit 0 (else the test fails, showing its stderr). */
void lqt_run_ok_(lqt_ns *ns, const char *arg, ...) __attribute__((sentinel));

#define lqt_run_ok(ns, ...) lqt_run_ok_((ns), __VA_ARGS__, (const char *)NULL)

/*
 * What a user sees of a failed command: exit status status and one line on
 * stderr that holds each of mentions (NULL-terminated, may be NULL).  what
 * names the command in the failure message.
 */
void lqt_expect_failure(const lqt_output *o, int status, const char *what,
                        const char *const *mentions);

/*
 * Write text to a file named name in the namespace's part of the log
 * directory; returns its path (static storage, valid until the next call).
 */
const char *lqt_write_file(lqt_ns *ns, const char *name, const char *text);

/* ------------------------------------------------------------ what users see */

/*
 * `ledgerq account show ID --json`, checked for the shape of docs/protocol.md
 * sections 6 and 13 (exactly its keys; overdraft_limit null exactly with
 * allow_negative; available = balance - held_debits).
 */
typedef struct lqt_account {
    char id[128];
    char currency[8];
    char status[16];
    int64_t balance, debits, credits; /* exact: read from the JSON text */
    int64_t held_debits, held_credits, available;
    bool allow_negative;
    bool overdraft_limit_null; /* null: allow_negative */
    int64_t overdraft_limit;
    bool max_balance_null; /* null: no ceiling */
    int64_t max_balance;
    char created_at[64];
    char raw[1024]; /* the printed line */
} lqt_account;

/* Show an account (must exit 0 and print the documented object). */
void lqt_account_show(lqt_ns *ns, const char *id, lqt_account *ret);

/* `ledgerq account show ID --at TIME --json` (docs/protocol.md section 15), as printed. */
typedef struct lqt_account_at {
    char id[128];
    char currency[8];
    char at[64];                                           /* the time asked for */
    int64_t balance, held_debits, held_credits, available; /* exact: read from the JSON text */
    char raw[1024];                                        /* the printed line */
} lqt_account_at;

/* Show an account as of at (must exit 0 and print the documented object, available included). */
void lqt_account_show_at(lqt_ns *ns, const char *id, const char *at, lqt_account_at *ret);

/* Its balance, via lqt_account_show(). */
int64_t lqt_balance(lqt_ns *ns, const char *id);

/* `ledgerq account list --json` as printed; the whole ledger's state.  Caller frees. */
char *lqt_accounts_snapshot(lqt_ns *ns);

typedef struct lqt_leg {
    char debit[128];
    char credit[128];
    int64_t amount;
    char currency[8];
} lqt_leg;

/*
 * `ledgerq payment show ID --json`, checked for the shape of docs/protocol.md
 * sections 6, 12 and 14: "type" always; an account command's "account" and
 * "change" (an object) too; a hold's "hold_status" and "expires_at"; a
 * capture's or void's "hold".
 */
typedef struct lqt_payment {
    char type[32];
    char account[128]; /* "" for a transfer */
    char change[1024]; /* the change object's compact JSON; "" for a transfer */
    /* A hold: pending, captured, voided or expired; "" (null) for a rejected hold. */
    char hold_status[16];
    char expires_at[64]; /* a hold's, RFC 3339 UTC; "" for null (it never expires) */
    char hold[256];      /* a capture's or void's hold; "" for the other types */
    char status[16];
    bool reason_null;
    char reason[64];
    bool detail_null;
    char detail[512];
    size_t n_legs;
    lqt_leg legs[8];
    char processed_at[64];
    char raw[8192];
} lqt_payment;

/*
 * Show a payment.  Returns the exit status; ret is filled (and the shape
 * checked) only when it is 0.  err_line (may be NULL, 512 bytes) gets
 * stderr.
 */
int lqt_payment_show(lqt_ns *ns, const char *id, lqt_payment *ret, char *err_line);

/* One entry of `ledgerq account history --json` (docs/protocol.md section 15). */
typedef struct lqt_entry {
    int64_t seq;
    char command[160];
    char type[32];
    int leg;                                            /* 0 for null */
    int64_t amount, balance, held_debits, held_credits; /* exact: read from the JSON text */
    char at[64];
    char change[1024]; /* the "change" object's JSON as printed; "" when the entry has none */
} lqt_entry;

/* A page of an account's history. */
typedef struct lqt_history {
    size_t n;
    lqt_entry *entries; /* owned, n of them */
    bool next_null;
    int64_t next;
    char *raw; /* the printed line, owned */
} lqt_history;

/*
 * Run `ledgerq account history ID --json` followed by args (NULL-terminated,
 * may be NULL); it must exit 0 and print one line: section 15's object,
 * checked strictly (its keys and each entry's, "change" exactly on
 * account.update entries, integers, RFC 3339 UTC times).  Release ret with
 * lqt_history_release().
 */
void lqt_account_history(lqt_ns *ns, const char *id, const char *const *args, lqt_history *ret);

void lqt_history_release(lqt_history *h);

/*
 * Every entry of id's history: `account history ID --json --limit 1000`,
 * page after page (--after the previous page's next) until next is null,
 * each page checked as lqt_account_history() checks it, and each page's
 * next the seq of its last entry.  ret->raw is NULL.  Release ret with
 * lqt_history_release().
 */
void lqt_history_all(lqt_ns *ns, const char *id, lqt_history *ret);

/*
 * What docs/protocol.md section 15 promises of h, the whole history of
 * account id (lqt_history_all()), against `account show ID --json` now:
 * seq 1, 2, 3, ... without a gap; the first entry the opening
 * (account.open, amount 0, balance 0, nothing held); each entry's balance
 * the previous one's plus its amount, so that the amounts sum to the
 * account's balance; at never decreasing; the last entry's balance and held
 * amounts the account's.  Fails the test, naming the entry, otherwise.
 */
void lqt_expect_history_consistent(lqt_ns *ns, const char *id, const lqt_history *h);

/*
 * lqt_history_all() and lqt_expect_history_consistent() for every account
 * `account list --json` lists; returns how many accounts there are.
 */
size_t lqt_expect_histories_consistent(lqt_ns *ns);

/* ------------------------------------------------------------ publishing */

/* A message to publish on the namespace's exchange. */
typedef struct lqt_msg {
    const char *body;
    size_t len;               /* 0: strlen(body) */
    const char *routing_key;  /* NULL: "payment.submitted" */
    const char *content_type; /* NULL: "application/json"; LQT_NO_CONTENT_TYPE: none */
    const char *message_id;   /* NULL: none */
    const char *reply_to;     /* NULL: none */
    const char *header;       /* a custom string header to set, NULL: none */
    const char *header_value;
} lqt_msg;

/*
 * Publish m (persistent, mandatory) without waiting for the confirm.  A
 * message with a custom header goes through its own connection (lq_publish
 * has no headers) and is confirmed at once.
 */
void lqt_send(lqt_ns *ns, const lqt_msg *m);

/* Wait for the confirms of everything sent; fail on a nack or an unroutable message. */
void lqt_confirm(lqt_ns *ns);

/* lqt_send() and lqt_confirm(). */
void lqt_publish(lqt_ns *ns, const lqt_msg *m);

/* Publish a JSON payment command with the default properties, confirmed. */
void lqt_pay(lqt_ns *ns, const char *json);

/* ------------------------------------------------------------ result events */

/* One message received by a listener, parsed as a result event. */
typedef struct lqt_event {
    char *body; /* owned, NUL-terminated */
    char routing_key[256];
    bool has_correlation_id;
    char correlation_id[256];
    char content_type[128];
    bool persistent;
    /* The event's fields (docs/protocol.md sections 6 and 12). */
    char id[256];
    /*
     * "transfer", "account.open", ...; "" when the event has no "type" (one
     * published by release 0.1.0, before command types: the upgrade tests
     * see those).
     */
    char type[32];
    char status[32];
    bool reason_null;
    char reason[64];
    bool detail_null;
    char detail[512];
    bool duplicate;
    char processed_at[64];
    /* A capture's or void's event: the hold it names (docs/protocol.md section 12). */
    bool has_hold;
    char hold[256];
    /*
     * A capture's event: the amount it posted on a single-leg hold (exact,
     * read from the text), or null; amount_null is also true for every
     * other type, whose events have no "amount".
     */
    bool amount_null;
    int64_t amount;
} lqt_event;

/*
 * A server-named, exclusive queue on a connection of its own, consumed
 * from.  lqt_listen() binds it to the results exchange with "#" (declare it
 * before publishing); lqt_listen_queue() leaves it unbound, for reply_to.
 * The namespace frees it.
 */
lqt_listener *lqt_listen(lqt_ns *ns);
lqt_listener *lqt_listen_queue(lqt_ns *ns);

/* The queue's name. */
const char *lqt_listener_queue(const lqt_listener *l);

/*
 * A durable queue named after the namespace, bound to the results exchange
 * with "#", that nothing consumes until lqt_listener_collect(): its events
 * survive a broker restart (the worker publishes them persistent, with
 * confirms).  The namespace deletes it.
 */
lqt_listener *lqt_listen_durable(lqt_ns *ns);

/*
 * Take every event a durable listener's queue holds now, on a connection of
 * its own, acking them; returns how many came.  Events then read as with
 * the other listeners.
 */
size_t lqt_listener_collect(lqt_listener *l);

/*
 * Receive until n messages have arrived in all, at most LQT_WAIT_S
 * seconds; each must be a well-formed result event.  Fails the test on
 * timeout.
 */
void lqt_wait_events(lqt_listener *l, size_t n);

/*
 * Receive whatever arrives within ms milliseconds, e.g. to see that no
 * stray event follows the ones awaited.
 */
void lqt_drain_events(lqt_listener *l, int ms);

size_t lqt_event_count(const lqt_listener *l);
const lqt_event *lqt_event_at(const lqt_listener *l, size_t i);

/* The nth (0-based) event received for payment id, or NULL. */
const lqt_event *lqt_event_find(const lqt_listener *l, const char *id, size_t nth);

/* How many events were received for payment id. */
size_t lqt_event_count_id(const lqt_listener *l, const char *id);

/*
 * Every event received, sorted by payment id, in the order they came within
 * an id.  Caller frees the array (not the events, which the listener owns).
 */
const lqt_event **lqt_events_by_id(const lqt_listener *l);

/*
 * The rule of result events for one processed payment, over the n events
 * received for id (in the order they came): at least one says duplicate:
 * false and is not an idempotency conflict.  That is its first outcome; it
 * may come more than once (published again when the broker never confirmed
 * it), and every such event and every duplicate tell the same status,
 * reason and processed_at.  Idempotency conflicts (duplicate: false,
 * rejected with idempotency_conflict, a later command with other content)
 * are counted in *ret_conflicts; with ret_conflicts NULL, one fails the
 * test.  Returns the first event telling the first outcome.
 */
const lqt_event *lqt_expect_first_outcome(const char *id, const lqt_event *const *events, size_t n,
                                          size_t *ret_conflicts);

/*
 * Whether one of the n events tells a first outcome (duplicate: false, not
 * an idempotency conflict), as lqt_expect_first_outcome() demands.
 */
bool lqt_has_first_outcome(const lqt_event *const *events, size_t n);

/* ------------------------------------------------------------ queues */

/*
 * Take messages from queue with basic.get until n have come (polling, at
 * most LQT_WAIT_S seconds), then check that no more is there.  Messages
 * are acked when ack, else left unacked on the harness connection (ack
 * them with lq_amqp_ack(ns->amqp, ...), give the rest back with
 * lqt_requeue_unacked()).  Returns an array of n deliveries; free with
 * lqt_deliveries_free().
 */
lq_delivery **lqt_get_n(lqt_ns *ns, const char *queue, size_t n, bool ack);

/* Take everything queue holds now (basic.get until empty), unacked. *ret_n gets the count. */
lq_delivery **lqt_get_all(lqt_ns *ns, const char *queue, size_t *ret_n);

void lqt_deliveries_free(lq_delivery **d, size_t n);

/*
 * Close the harness connection (ns->amqp) and open another: the broker
 * gives back every message it held unacked, as a reject with requeue would
 * (a quorum queue counts each such return towards its delivery limit).
 */
void lqt_requeue_unacked(lqt_ns *ns);

/* Remove every ready message of queue; returns how many. */
uint32_t lqt_purge(lqt_ns *ns, const char *queue);

/* Delete a queue, or an exchange (what does not exist is deleted already). */
void lqt_delete_queue(lqt_ns *ns, const char *queue);
void lqt_delete_exchange(lqt_ns *ns, const char *exchange);

/*
 * How many messages queue holds ready for delivery (not those delivered and
 * unacked), by a passive declare; *ret_consumers (may be NULL) gets its
 * consumer count.
 */
uint32_t lqt_queue_ready(lqt_ns *ns, const char *queue, uint32_t *ret_consumers);

/* Whether queue exists; *ret_consumers (may be NULL) gets its consumer count. */
bool lqt_queue_exists(lqt_ns *ns, const char *queue, uint32_t *ret_consumers);

/* Wait (at most LQT_WAIT_S seconds) until queue holds exactly n ready messages. */
void lqt_wait_queue_ready(lqt_ns *ns, const char *queue, uint32_t n);

/* A string header of d, or NULL when absent (static buffer, one at a time). */
const char *lqt_header(const lq_delivery *d, const char *name);

/* What RabbitMQ recorded in a message's first x-death entry (a broker dead-lettering). */
typedef struct lqt_death {
    char reason[64];   /* "delivery_limit", "rejected", ...; "" when there is no x-death */
    char queue[256];   /* where it died */
    int64_t count;     /* times dead-lettered for that reason from that queue */
    char body[1024];   /* the message body, cut to fit */
    char error[64];    /* its x-ledgerq-error header, "" when absent */
    char detail[1024]; /* its x-ledgerq-error-detail header, "" when absent */
} lqt_death;

/*
 * Take every message queue holds now (basic.get on a connection of its
 * own), acking none, and describe each in ret (up to max); returns how many
 * the queue held.  The messages stay in the queue.
 */
size_t lqt_dead_letters(lqt_ns *ns, const char *queue, lqt_death *ret, size_t max);

/* ------------------------------------------------------------ workers */

/*
 * Start `ledgerq worker` in ns's environment plus env (NULL-terminated
 * "NAME=value" list, may be NULL), with LEDGERQ_HTTP_ADDR=off,
 * LEDGERQ_LOG_FORMAT=json and its output in a log file.
 */
lqt_worker *lqt_worker_start(lqt_ns *ns, const char *const *env);

pid_t lqt_worker_pid(const lqt_worker *w);

/*
 * SIGTERM the worker and wait for it (at most 60 s, then SIGKILL).  Returns
 * its exit code (128 + signal when killed), printing its log tail when not
 * 0.  Frees w.
 */
int lqt_worker_stop(lqt_worker *w);

/* Send sig to the worker (it keeps running, or not: see lqt_worker_wait()). */
void lqt_worker_signal(lqt_worker *w, int sig);

/*
 * Wait for the worker to exit, at most timeout_ms (then SIGKILL it and fail
 * the test).  Returns its exit code (128 + signal when killed); *ret_ms (may
 * be NULL) gets how long the wait took.  Frees w.
 */
int lqt_worker_wait(lqt_worker *w, int timeout_ms, int64_t *ret_ms);

/*
 * Start `ledgerq ARG...` (NULL-terminated) in ns's environment in the
 * background, stdin from /dev/null, stdout and stderr appended to log_path.
 * It dies with the test; the caller waits for it (waitpid()).
 */
pid_t lqt_start(lqt_ns *ns, const char *log_path, const char *const *args);

/* Wait (at most LQT_WAIT_S seconds) until a line of the worker's log contains needle. */
void lqt_worker_wait_log(lqt_worker *w, const char *needle);

/* Whether the worker is still running (false once it exited; it is then reaped). */
bool lqt_worker_running(lqt_worker *w);

/* kill -9 the worker (a crash) and reap it.  Frees w. */
void lqt_worker_kill(lqt_worker *w);

/* How many lines of ns's worker logs (all of them, ended or not) contain needle. */
size_t lqt_log_count(const lqt_ns *ns, const char *needle);

/* The worker's log file (static storage of w: copy it to use it after w is freed). */
const char *lqt_worker_log_path(const lqt_worker *w);

/* How many lines of the file at path contain needle (0 when it cannot be read). */
size_t lqt_file_count(const char *path, const char *needle);

/* Print the last lines of every worker log of ns to stderr. */
void lqt_print_logs(const lqt_ns *ns);

/* ------------------------------------------------------------ publishing in the background */

typedef struct lqt_publisher lqt_publisher;

/*
 * Publish the files (JSON lines, NULL-terminated list of paths) in order,
 * one `ledgerq publish --file` each, from a process of its own, pausing
 * pause_ms after each file.  A file whose publish fails (the broker is
 * down, the connection died) is published again, whole, until it succeeds:
 * republishing the same ids is harmless by design.  Gives up after
 * 5 minutes.  Runs while the test goes on.
 */
lqt_publisher *lqt_publisher_start(lqt_ns *ns, const char *const *files, int pause_ms);

/* Whether the publisher has finished (successfully or not). */
bool lqt_publisher_done(lqt_publisher *p);

/*
 * Wait for the publisher (at most timeout_s) and fail the test unless it
 * published every file.  Returns how many publishes had to be repeated.
 * Frees p.
 */
int lqt_publisher_wait(lqt_publisher *p, int timeout_s);

/* ------------------------------------------------------------ the stack (fault tests) */

/*
 * Run `stack.sh --dir DIR command service`: command is start, stop (pg:
 * pg_ctl -m fast) or kill (SIGKILL); service is "amqp" or "pg".  Fails
 * the test if it does not exit 0 within 3 minutes.
 */
void lqt_stack(const char *command, const char *service);

/*
 * Run `stack.sh --dir DIR ctl ARG...` (rabbitmqctl against the stack's
 * node; NULL-terminated).  Returns its exit status; failing_ok false fails
 * the test unless it is 0.
 */
int lqt_stack_ctl_(bool failing_ok, const char *arg, ...) __attribute__((sentinel));

#define lqt_stack_ctl(...)     lqt_stack_ctl_(false, __VA_ARGS__, (const char *)NULL)
#define lqt_stack_ctl_try(...) lqt_stack_ctl_(true, __VA_ARGS__, (const char *)NULL)

/* Stop PostgreSQL with pg_ctl -m immediate (a crash without losing committed work). */
void lqt_stack_pg_immediate(void);

/* ------------------------------------------------------------ the database */

/* Run SQL (no parameters) in the namespace database; fails the test on error. */
void lqt_sql(lqt_ns *ns, const char *sql);

/*
 * Run a query with up to one text parameter (NULL: none) and return the
 * first column of the first row (caller frees), or NULL when no row.
 */
char *lqt_sql_value(lqt_ns *ns, const char *sql, const char *param);

/* Make every insert into payments take ms milliseconds longer (a trigger). */
void lqt_slow_inserts(lqt_ns *ns, double ms);

/*
 * Make storing payment id fail every time, for a reason that is not an
 * outage: a trigger raises "lqt poison pill <id>".
 */
void lqt_poison(lqt_ns *ns, const char *id);

/* ------------------------------------------------------------ small things */

/* Whether s holds one line: non-empty, one '\n' at most and only at the end. */
bool lqt_one_line(const char *s);

/* Parse an RFC 3339 UTC time ("...Z"); false when it is not one. */
bool lqt_parse_utc(const char *s, time_t *ret);

/*
 * Parse an RFC 3339 UTC time as lqt_parse_utc() does, keeping its fraction:
 * microseconds since the epoch (digits past the sixth ignored).
 */
bool lqt_parse_utc_us(const char *s, int64_t *ret_us);

/* The wall clock (CLOCK_REALTIME, the clock the database's times compare with) in microseconds. */
int64_t lqt_wall_us(void);

/* A NUL-terminated copy of n bytes of s (caller frees); fails the test when out of memory. */
char *lqt_strndup(const char *s, size_t n);

/* Check that a JSON object has exactly the keys given (NULL-terminated); what names it. */
void lqt_check_keys(const struct cJSON *obj, const char *what, const char *const *keys);

/* A string member, or NULL for null; anything else fails the test. */
const char *lqt_json_string_or_null(const struct cJSON *obj, const char *key, const char *what);

/* Append key='value' to a conninfo string of len bytes (quotes and backslashes escaped). */
void lqt_conninfo_add(char *buf, size_t len, const char *key, const char *value);

/*
 * Run argv (PATH searched) with stdin from /dev/null and return what it
 * printed on stdout (caller frees), NULL when it could not be run;
 * *ret_status gets its exit code (128 + signal when killed).  Its stderr
 * goes to ours.  Usable outside a test (no Check assertions).
 */
char *lqt_capture(char *const argv[], int *ret_status);

#endif
