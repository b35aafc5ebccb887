/* masq http-proxy: HTTP/1.1 over the shared proxy connection; see
 * httpproxy.h. */
#include "client/httpproxy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/proxyconn.h"
#include "client/tcpflow.h"
#include "io/log.h"
#include "io/loop.h"
#include "proto/frontend.h"
#include "proto/http1.h"
#include "proto/request.h"

/* A client has this long to send a whole request head. */
#define NEGOTIATE_S 30
/* RFC 9110 §7.6.3: the pseudonym in the Via entry masq adds. */
#define VIA "masq"

typedef struct hproxy {
  const masq_opts *o;
  masq_loop *loop;
  masq_pc *pc;
  masq_tfs *tfs;
  masq_tf_listener l;
} hproxy;

typedef struct hconn {
  masq_tf tf; /* first */
  masq_http1_parser p;
  int is_connect;
  uint8_t *head; /* absolute form: the head to send to the origin */
  size_t headlen;
} hconn;

static const masq_http1_header conn_close = {"Connection", "close"};

/* Queues a response without content and ends the connection after it
 * (the simplest way to stay in sync with a client after an error). */
static void respond(hconn *hc, int status, const char *error, const char *details) {
  char ps[512];
  uint8_t out[1024];
  const char *psv = NULL;
  if (error && masq_proxy_status_format(ps, sizeof(ps), error, details) >= 0) psv = ps;
  int n = masq_http1_response_encode(out, sizeof(out), status, NULL, psv, &conn_close, 1);
  if (n > 0) masq_tf_reply(&hc->tf, out, (size_t)n);
  masq_tf_close(&hc->tf);
}

/* OPTIONS or TRACE with Max-Forwards: 0 is for masq itself (RFC 9110
 * §7.6.2): TRACE echoes the request head (§9.3.8), OPTIONS says which
 * methods pass. The body ends with the connection. */
static void answer_here(hconn *hc, const uint8_t *buf) {
  const masq_http1_request *r = &hc->p.req;
  int trace = masq_http1_span_ieq(buf, r->method, "TRACE");
  masq_http1_header extra[2] = {
      conn_close,
      trace ? (masq_http1_header){"Content-Type", "message/http"}
            : (masq_http1_header){"Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, CONNECT"}};
  uint8_t out[512];
  int n = masq_http1_response_encode(out, sizeof(out), 200, "OK", NULL, extra, 2);
  if (n > 0) masq_tf_reply(&hc->tf, out, (size_t)n);
  if (trace) masq_tf_reply(&hc->tf, buf, r->head_len);
  masq_tf_close(&hc->tf);
}

/* An http:// request: build the head for the origin now (the parser's
 * spans point into the input, which is consumed next), and relay only
 * this request's body. */
static int prepare_forward(hconn *hc, const uint8_t *buf) {
  const masq_http1_request *r = &hc->p.req;
  size_t cap = r->head_len + MASQ_HTTP1_FORWARD_SLACK + sizeof(VIA);
  hc->head = malloc(cap);
  if (!hc->head) {
    respond(hc, 500, "proxy_internal_error", "out of memory");
    return -1;
  }
  masq_http1_forward_opts fo = {.via = VIA, .close = 1};
  int n = masq_http1_forward_head(r, buf, &fo, hc->head, cap);
  if (n == MASQ_HTTP1_FWD_MAX_FORWARDS) {
    answer_here(hc, buf);
    return -1;
  }
  if (n < 0) {
    respond(hc, 500, "proxy_internal_error", "cannot rewrite the request head");
    return -1;
  }
  hc->headlen = (size_t)n;
  /* A chunked body ends where the chunks say; masq does not parse them
   * and relays until the client is done. */
  if (!r->chunked) masq_tf_limit_upload(&hc->tf, r->content_length > 0 ? (uint64_t)r->content_length : 0);
  return 0;
}

static void hconn_on_input(masq_tf *tf) {
  hconn *hc = (hconn *)tf;
  size_t len;
  const uint8_t *in = masq_tf_input(tf, &len);
  masq_http1_result res = masq_http1_parse(&hc->p, in, len);
  if (res == MASQ_HTTP1_NEED_MORE) return;
  if (res == MASQ_HTTP1_ERROR) {
    masq_log_rl(MASQ_LOG_INFO, "http-proxy: bad request from a client: %s",
                masq_http1_strerror(hc->p.error));
    respond(hc, hc->p.status ? hc->p.status : 400, "http_request_error",
            masq_http1_strerror(hc->p.error));
    return;
  }
  const masq_http1_request *r = &hc->p.req;
  char authority[MASQ_FE_AUTHORITY_MAX + 1];
  if (masq_fe_authority(r->host, r->port, authority, sizeof(authority)) < 0) {
    respond(hc, 400, "http_request_error", "bad target");
    return;
  }
  hc->is_connect = r->is_connect;
  if (!hc->is_connect && prepare_forward(hc, in) != 0) return;
  masq_tf_consume(tf, r->head_len);
  masq_tf_connect(tf, authority); /* hc may be gone after this */
}

/* The RFC 9209 error type to report when the proxy gave none. */
static const char *fallback_error(int status) {
  if (status == 0) return "proxy_internal_error";
  if (status == 401 || status == 403 || status == 407) return "http_request_denied";
  if (status == 504) return "connection_timeout";
  return "destination_unavailable";
}

static int hconn_on_response(masq_tf *tf, int status, const char *etype,
                             const masq_reqhdrs *h) {
  hconn *hc = (hconn *)tf;
  if (status >= 200 && status < 300) {
    if (hc->is_connect) {
      uint8_t out[128];
      int n = masq_http1_response_encode(out, sizeof(out), 200, NULL, NULL, NULL, 0);
      if (n <= 0 || masq_tf_reply(tf, out, (size_t)n) != 0) return MASQ_TF_RESET;
    } else if (masq_tf_send(tf, hc->head, hc->headlen) != 0) {
      respond(hc, 502, "proxy_internal_error", "cannot send the request head");
      return MASQ_TF_CLOSE;
    }
    return MASQ_TF_OPEN;
  }
  char details[96];
  if (status) snprintf(details, sizeof(details), "the MASQUE proxy answered %d", status);
  else snprintf(details, sizeof(details), "no answer from the MASQUE proxy");
  int gw = masq_fe_gateway_status(status, etype);
  masq_log_rl(MASQ_LOG_INFO, "http-proxy: tunnel to %s refused (status %d%s%s): answering %d",
              tf->authority, status, etype ? ", " : "", etype ? etype : "", gw);
  respond(hc, gw, etype ? etype : fallback_error(status), details);
  return MASQ_TF_CLOSE;
}

static void hconn_on_free(masq_tf *tf) {
  hconn *hc = (hconn *)tf;
  free(hc->head);
  hc->head = NULL;
}

static const masq_tf_ops hconn_ops = {
    .on_input = hconn_on_input,
    .on_response = hconn_on_response,
    .on_free = hconn_on_free,
};

static void on_accept(masq_tf_listener *l, int fd) {
  hproxy *hp = l->ud;
  hconn *hc = (hconn *)masq_tf_new(hp->tfs, fd, &hconn_ops, sizeof(hconn), NEGOTIATE_S);
  if (hc) masq_http1_parser_init(&hc->p);
}

int masq_httpproxy_run(const masq_opts *o) {
  static hproxy hp;
  memset(&hp, 0, sizeof(hp));
  hp.o = o;
  hp.l.fd = -1;
  int rc = 1;
  masq_pc_raise_nofile();
  hp.loop = masq_loop_new();
  if (!hp.loop) {
    masq_log(MASQ_LOG_ERR, "cannot create the event loop: %s", strerror(errno));
    return 1;
  }
  if (!(hp.pc = masq_pc_new(hp.loop, o)) || !(hp.tfs = masq_tfs_new(hp.loop, hp.pc)) ||
      masq_tf_listen(hp.tfs, &hp.l, o->listen, on_accept, &hp) != 0)
    goto out;
  masq_log(MASQ_LOG_INFO, "http proxy listening on %s", o->listen);
  if (masq_pc_start(hp.pc) != 0) goto out;
  rc = masq_pc_run(hp.pc);
out:
  masq_tf_unlisten(&hp.l);
  masq_tfs_free(hp.tfs);
  masq_pc_free(hp.pc);
  masq_loop_free(hp.loop);
  return rc;
}
