/* HTTP from the tests (see support_http.h). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support_http.h"

int lqt_http_get(int port, const char *path, char *ret_body, size_t body_len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[256];
    static char buf[65536];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = -1;
    char *body;

    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    ret_body[0] = '\0';
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    sscanf(buf, "HTTP/1.%*d %d", &status);
    body = strstr(buf, "\r\n\r\n");
    snprintf(ret_body, body_len, "%s", body ? body + 4 : "");
    return status;
}

double lqt_http_sample(const char *text, const char *series)
{
    size_t len = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[len] == ' ')
            return strtod(p + len + 1, NULL);
        p += len;
    }
    return -1;
}

int lqt_http_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int lqt_http_wait_status(int port, const char *path, int want, int seconds)
{
    static char body[65536];
    int status = -1;

    for (int i = 0; i < seconds * 10; i++) {
        status = lqt_http_get(port, path, body, sizeof(body));
        if (status == want)
            break;
        usleep(100000);
    }
    return status;
}
