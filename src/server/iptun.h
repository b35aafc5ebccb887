/* The CONNECT-IP gateway's datapath between iptun.c (the TUN device) and
 * connect_ip.c (the tunnels), for what internal.h's shared server state
 * does not cover: super-packets the TUN hands over with TSO/USO
 * (proto/gso.h). */
#ifndef MASQ_SERVER_IPTUN_H
#define MASQ_SERVER_IPTUN_H

#include "proto/gso.h"
#include "server/internal.h"

/* A TCP/UDP super-packet pkt[0..len) described by h, read from the
 * gateway's TUN for the tunnel owner: checked once (its segments share
 * their headers), then cut into packets in place (pkt is overwritten),
 * each sent as its own datagram (RFC 9484 §11). Packet Too Big compares
 * the segment size with the tunnel's limit. */
void masq_ip_from_tun_gso(srv *s, uint64_t owner, const masq_vnet_hdr *h, uint8_t *pkt,
                          size_t len);

#endif
