/* h3probe's request streams, shared by every case family: opening them
 * (through the session or with raw header fields) and checking the
 * server's answer. */
#ifndef H3PROBE_REQUEST_H
#define H3PROBE_REQUEST_H

#include <string.h>

#include "harness.h"

/* One header field for req_open_raw(). */
#define NV(n, v) \
  { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP3_NV_FLAG_NONE }

/* A new, empty record for a request stream; ends the run past
 * MAX_PSTREAMS. */
pstream *req_new(probe *p);

/* Waits until the server lets the probe open another request stream. */
void req_wait_credit(probe *p);

/* Records in s the stream ID a session submit call returned; a negative
 * one ends the run with code 1 ("cannot submit a NOUN: ERR"). Logs
 * "stream ID: VERB TARGET" with -v. Returns s. */
pstream *req_submitted(probe *p, pstream *s, int64_t sid, const char *noun, const char *verb,
                       const char *target);

/* Submits a request with exactly the given header fields (well-formed or
 * not), through nghttp3 directly, keeping the stream open for a body as
 * a CONNECT does and registering it with the session so responses,
 * datagrams and capsules reach the callbacks. */
pstream *req_open_raw(probe *p, const nghttp3_nv *nva, size_t nvlen);

/* "Bearer TOKEN" (an empty token without --token) for an authorization
 * field. */
void req_bearer(const probe *p, char *buf, size_t cap);

/* Conditions for hp_pump_for(); arg is the pstream. */
int req_answered(probe *p, void *arg); /* response or stream gone */
int req_closed(probe *p, void *arg);   /* stream gone */

/* Waits for the response (or the stream's end without one). */
void req_wait_answer(probe *p, pstream *s);

/* "200" or "no response (stream closed, app error 0x10e)". */
const char *req_answer_str(const pstream *s, char *buf, size_t cap);

/* Expects a 200 that opens a tunnel (with capsule-protocol: ?1 if
 * want_capsule_protocol) and marks the stream as one; 0 or hp_fail(). */
int req_expect_tunnel(probe *p, pstream *s, int want_capsule_protocol);

/* Expects an error status and, if ps_has is non-NULL, a Proxy-Status
 * containing it; 0 or hp_fail(). */
int req_expect_refusal(probe *p, pstream *s, int status, const char *ps_has);

#endif
