/* Capsule Protocol (RFC 9297 §3): an incremental parser for the data of a
 * request stream and the header encoder for capsules masq sends.
 *
 * Like nghttp3's stream reader, the parser takes bytes as they arrive, in
 * pieces of any size, and reports each capsule through callbacks. It keeps
 * no more than one capsule's payload and only for types the caller wants;
 * every other capsule is skipped as it streams past (RFC 9297 §3.2:
 * unknown types are ignored). */
#ifndef MASQ_PROTO_CAPSULE_H
#define MASQ_PROTO_CAPSULE_H

#include <stddef.h>
#include <stdint.h>

/* What on_begin tells the parser to do with a capsule. */
typedef enum {
  MASQ_CAPSULE_SKIP = 0,   /* discard its payload, no on_capsule call */
  MASQ_CAPSULE_DELIVER = 1 /* collect it and call on_capsule once whole */
} masq_capsule_action;

typedef struct masq_capsule_callbacks {
  /* A capsule header was read: type and payload length. Return an action
   * (any other non-negative value counts as SKIP), or a negative value to
   * stop the parser with that error. Wanting a capsule longer than the
   * parser's buffer makes feed() fail with MASQ_CAPSULE_ERR_TOO_LONG
   * unless on_begin returns SKIP for it. */
  int (*on_begin)(void *user, uint64_t type, uint64_t len);
  /* A whole DELIVER capsule. payload is valid only during the call. A
   * negative return stops the parser with that error. */
  int (*on_capsule)(void *user, uint64_t type, const uint8_t *payload, size_t len);
} masq_capsule_callbacks;

/* Errors from masq_capsule_parser_feed / _finish. Callback errors (any
 * other negative value) are passed through unchanged. */
#define MASQ_CAPSULE_ERR_TOO_LONG (-2)  /* wanted capsule exceeds buffer */
#define MASQ_CAPSULE_ERR_TRUNCATED (-3) /* stream ended inside a capsule */
#define MASQ_CAPSULE_ERR_FAILED (-4)    /* parser already failed earlier */

typedef struct masq_capsule_parser {
  const masq_capsule_callbacks *cb;
  void *user;
  uint8_t *buf; /* caller-owned payload buffer */
  size_t cap;
  int state;
  uint8_t hdr[16]; /* partial type+length varints */
  size_t hdrlen;
  uint64_t type;
  uint64_t len;  /* payload length of the current capsule */
  uint64_t done; /* payload bytes seen of the current capsule */
  int action;
  int err;
} masq_capsule_parser;

/* buf/cap: storage for one delivered payload (at most MASQ_MAX_CAPSULE is
 * useful). The parser never allocates. */
void masq_capsule_parser_init(masq_capsule_parser *p, const masq_capsule_callbacks *cb,
                              void *user, uint8_t *buf, size_t cap);

/* Consumes all of data[0..len). Returns 0, or a negative error; after an
 * error every later call returns MASQ_CAPSULE_ERR_FAILED. A payload that
 * lies whole inside data is delivered straight from data without a copy. */
int masq_capsule_parser_feed(masq_capsule_parser *p, const uint8_t *data, size_t len);

/* The stream ended (FIN). Returns 0 if it ended between capsules, else
 * MASQ_CAPSULE_ERR_TRUNCATED (RFC 9297 §3.3: a malformed stream), which
 * like any error makes later calls return MASQ_CAPSULE_ERR_FAILED. */
int masq_capsule_parser_finish(masq_capsule_parser *p);

/* Length of the header (type + length varints) of a capsule; 0 if either
 * exceeds MASQ_VARINT_MAX. */
size_t masq_capsule_header_len(uint64_t type, uint64_t payload_len);

/* Writes that header at dst (masq_capsule_header_len bytes). Returns the
 * number of bytes written (0, writing nothing, for unencodable values). */
size_t masq_capsule_header_encode(uint8_t *dst, uint64_t type, uint64_t payload_len);

#endif
