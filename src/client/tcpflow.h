/* Local TCP connections carried over plain CONNECT streams (RFC 9114
 * §4.4) on the shared proxy connection: the machinery every TCP front
 * end shares (masq socks, masq http-proxy, masq forward --tcp).
 *
 * A flow owns its accepted socket from start to end. It begins by
 * handing what the application sends to its front end (on_input), which
 * answers with masq_tf_reply and, once it knows the target,
 * masq_tf_connect. The proxy's answer goes to on_response; on success
 * bytes flow both ways until both sides have ended:
 *  - local -> proxy: the socket is read only while the stream's send
 *    buffer takes bytes; what it did not take waits in the flow's input
 *    buffer and reading resumes on on_writable;
 *  - proxy -> local: bytes are queued in the flow's output ring and
 *    written to the socket once per loop iteration; flow-control credit
 *    goes back to the proxy only for bytes the socket took, so a slow
 *    reader slows the sender and the ring never holds more than the
 *    stream's receive window;
 *  - local EOF -> FIN on the stream; the proxy's FIN -> shutdown(SHUT_WR)
 *    once the ring is empty;
 *  - a local reset or error -> stream reset with H3_REQUEST_CANCELLED;
 *    a stream reset (or a lost connection) -> the local socket is reset
 *    (SO_LINGER 0).
 * Memory per flow: the struct with its input buffer, and an output
 * ring allocated when the tunnel opens, grown by doubling only while the
 * proxy sends faster than the application reads (bounded by the window).
 */
#ifndef MASQ_CLIENT_TCPFLOW_H
#define MASQ_CLIENT_TCPFLOW_H

#include <stddef.h>
#include <stdint.h>

#include "client/proxyconn.h"
#include "io/loop.h"
#include "proto/frontend.h"

/* Input buffer: room for a whole HTTP/1.1 request head (the parser
 * needs it in one piece) with some to spare, and the read size. */
#define MASQ_TF_INBUF (32 * 1024)

typedef struct masq_tfs masq_tfs;
typedef struct masq_tf masq_tf;

/* on_response's verdict. */
#define MASQ_TF_OPEN 0   /* 2xx: start relaying */
#define MASQ_TF_CLOSE 1  /* send what was replied, then close */
#define MASQ_TF_RESET 2  /* reset the local connection now */

typedef struct masq_tf_ops {
  /* Before the tunnel: bytes arrived (masq_tf_input). Consume, reply,
   * connect, fail or hold. Not called again while connecting. */
  void (*on_input)(masq_tf *f);
  /* The proxy answered: status 2xx or the refusal (0 if the stream was
   * lost first), with the Proxy-Status error type if any. A client-side
   * timeout comes as status 504 with "connection_timeout". h is NULL
   * unless a response arrived. Queue the reply, return a verdict. */
  int (*on_response)(masq_tf *f, int status, const char *error_type, const masq_reqhdrs *h);
  /* The flow is being freed (may be NULL). */
  void (*on_free)(masq_tf *f);
} masq_tf_ops;

/* Embedded first in a front end's own per-connection struct; the fields
 * belong to tcpflow.c. */
struct masq_tf {
  masq_pc_req req;
  masq_tfs *m;
  const masq_tf_ops *ops;
  int fd;
  masq_io io;
  masq_timer timer;
  int state;
  unsigned local_eof : 1;  /* read 0 from the socket */
  unsigned fin_sent : 1;   /* FIN queued on the stream */
  unsigned remote_eof : 1; /* the proxy's FIN */
  unsigned shut_wr : 1;    /* shutdown(SHUT_WR) done */
  unsigned flushing : 1;   /* on the flush list */
  masq_tf *fnext, *fprev;  /* flush list */
  masq_tf *anext, *aprev;  /* all flows */
  size_t in_off, in_len;   /* input not yet consumed / sent */
  int64_t upload_left;     /* bytes still to relay upstream, -1: no limit */
  uint8_t *out;            /* output ring */
  size_t out_cap, out_head, out_len;
  size_t out_local;        /* leading ring bytes that are our own replies */
  uint64_t up, down;
  char authority[MASQ_FE_AUTHORITY_MAX + 1];
  uint8_t in[MASQ_TF_INBUF];
};

/* The flows of one process. NULL after logging on failure. */
masq_tfs *masq_tfs_new(masq_loop *loop, masq_pc *pc);
/* Resets every flow left. Before masq_pc_free. */
void masq_tfs_free(masq_tfs *m);
masq_pc *masq_tfs_pc(masq_tfs *m);
masq_loop *masq_tfs_loop(masq_tfs *m);

/* Takes over an accepted socket: a flow of `size` bytes (the front end's
 * struct, masq_tf first) waiting for input for at most negotiate_s
 * seconds. Closes fd and returns NULL on failure. */
masq_tf *masq_tf_new(masq_tfs *m, int fd, const masq_tf_ops *ops, size_t size,
                     unsigned negotiate_s);

/* The bytes received and not consumed yet. */
const uint8_t *masq_tf_input(masq_tf *f, size_t *len);
void masq_tf_consume(masq_tf *f, size_t n);
/* Queues bytes for the local socket (a protocol reply). 0 or -1. */
int masq_tf_reply(masq_tf *f, const uint8_t *p, size_t n);
/* Asks the proxy for a tunnel to authority ("host:port"); input not
 * consumed by then is sent first once it opens. If the request fails at
 * once, on_response runs (and the flow may be freed) before this
 * returns: touch f no more after calling it. */
void masq_tf_connect(masq_tf *f, const char *authority);
/* Sends bytes on the stream ahead of the local ones (from on_response,
 * on success): the forwarded request head of masq http-proxy. 0, or -1
 * if the stream would not take them all. */
int masq_tf_send(masq_tf *f, const uint8_t *p, size_t n);
/* Relay at most n more bytes from the application (the rest is read
 * and dropped): one request per tunnel. */
void masq_tf_limit_upload(masq_tf *f, uint64_t n);
/* Ends the flow after the queued reply has gone out. */
void masq_tf_close(masq_tf *f);
/* Resets the local connection and frees the flow now. */
void masq_tf_reset(masq_tf *f);
/* Keeps the connection open without a tunnel, discarding input, until
 * the application closes it (SOCKS UDP ASSOCIATE's control connection). */
void masq_tf_hold(masq_tf *f);

/* A listening TCP socket that hands accepted sockets to on_accept. */
typedef struct masq_tf_listener masq_tf_listener;
struct masq_tf_listener {
  masq_tfs *m;
  int fd;
  masq_io io;
  masq_timer pause; /* out of file descriptors: accept again later */
  void (*on_accept)(masq_tf_listener *l, int fd);
  void *ud;
  char name[80];
};
/* Listens on "ADDR:PORT" / "[V6]:PORT". 0, or -1 after logging why. */
int masq_tf_listen(masq_tfs *m, masq_tf_listener *l, const char *addrport,
                   void (*on_accept)(masq_tf_listener *l, int fd), void *ud);
void masq_tf_unlisten(masq_tf_listener *l);

#endif
