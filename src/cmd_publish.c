/* `ledgerq publish`: payment commands from JSON lines, with publisher confirms. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledgerq/amqp.h"
#include "ledgerq/cli.h"
#include "ledgerq/error.h"
#include "ledgerq/message.h"

/* Publishes in flight before waiting for their confirms. */
#define CONFIRM_WINDOW     1000
#define CONFIRM_TIMEOUT_MS 60000

static const lq_cli_option publish_options[] = {
    {"file", true, "F  read commands from F instead of stdin"},
    {"routing-key", true, "K  routing key (default payment.submitted)"},
    {"content-type", true, "T  content type (default application/json; \"none\" for none)"},
    {"reply-to", true, "Q  ask for the result event on queue Q too"},
    {NULL, false, NULL},
};

int lq_cmd_publish(int argc, char **argv)
{
    lq_cli_args args;
    lq_amqp *amqp = NULL;
    FILE *in = stdin;
    char *line = NULL, err[512];
    size_t len = 0;
    uint64_t published = 0, failed;
    ssize_t got;
    const char *path, *content_type;
    lq_publish pub;
    int r, rc = lq_cli_parse("publish", "[--file F] [--routing-key K]", publish_options, argc, argv,
                             &args);

    if (rc != LQ_CLI_CONTINUE)
        goto out;
    rc = LQ_EXIT_USAGE;
    if (!lq_cli_want_args("publish", &args, 0, 0))
        goto out;
    memset(&pub, 0, sizeof(pub));
    pub.exchange = args.cfg.exchange;
    pub.routing_key = lq_cli_value(&args, publish_options, "routing-key");
    if (pub.routing_key == NULL)
        pub.routing_key = "payment.submitted";
    content_type = lq_cli_value(&args, publish_options, "content-type");
    pub.content_type = content_type == NULL                ? "application/json"
                       : strcmp(content_type, "none") == 0 ? NULL
                                                           : content_type;
    pub.reply_to = lq_cli_value(&args, publish_options, "reply-to");
    /* Unroutable commands come back instead of vanishing. */
    pub.mandatory = true;

    rc = LQ_EXIT_FAILURE;
    path = lq_cli_value(&args, publish_options, "file");
    if (path && (in = fopen(path, "r")) == NULL) {
        lq_cli_fail("could not open file \"%s\": %s", path, strerror(errno));
        goto out;
    }
    if (lq_amqp_connect_config(&args.cfg, 0, &amqp, err, sizeof(err)) != LQ_OK) {
        lq_cli_fail("%s", err);
        goto out;
    }
    if (args.cfg.declare && lq_amqp_declare_topology(amqp, &args.cfg) != LQ_OK) {
        lq_cli_fail("%s", lq_amqp_error(amqp));
        goto out;
    }
    while ((got = getline(&line, &len, in)) >= 0) {
        char id[LQ_ID_MAX + 1];
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            got--;
        if (got == 0)
            continue;
        pub.body = line;
        pub.body_len = (size_t)got;
        pub.message_id = lq_message_peek_id(line, (size_t)got, id) ? id : NULL;
        r = lq_amqp_publish(amqp, &pub, NULL);
        if (r == LQ_OK && ++published % CONFIRM_WINDOW == 0)
            r = lq_amqp_wait_confirms(amqp, CONFIRM_TIMEOUT_MS);
        if (r != LQ_OK && r != LQ_ERR_AMQP_NACK) {
            lq_cli_fail("%s", lq_amqp_error(amqp));
            goto out;
        }
    }
    if (ferror(in)) {
        lq_cli_fail("could not read %s: %s", path ? path : "standard input", strerror(errno));
        goto out;
    }
    r = lq_amqp_wait_confirms(amqp, CONFIRM_TIMEOUT_MS);
    if (r != LQ_OK && r != LQ_ERR_AMQP_NACK) {
        lq_cli_fail("%s",
                    r == LQ_ERR_TIMEOUT ? "timed out waiting for confirms" : lq_amqp_error(amqp));
        goto out;
    }
    failed = lq_amqp_nacked(amqp) + lq_amqp_returned(amqp);
    printf("published %" PRIu64 ", confirmed %" PRIu64 "\n", published, published - failed);
    if (failed) {
        lq_cli_fail("%" PRIu64 " not accepted (%" PRIu64 " refused, %" PRIu64
                    " unroutable: no queue bound for routing key \"%s\")",
                    failed, lq_amqp_nacked(amqp), lq_amqp_returned(amqp), pub.routing_key);
        goto out;
    }
    rc = LQ_EXIT_OK;
out:
    free(line);
    if (in && in != stdin)
        fclose(in);
    lq_amqp_close(amqp);
    lq_cli_args_release(&args);
    return rc;
}
