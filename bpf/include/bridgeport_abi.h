/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every layout shared between the BPF programs and the TypeScript control
 * plane: map keys and values, settings, flags and reasons. Fixed-width fields,
 * explicit padding, network byte order for addresses and ports.
 * Layout shared with src/datapath/ebpf/abi.ts: keep in step (a test compares
 * both against this object's BTF).
 */
#ifndef BRIDGEPORT_ABI_H
#define BRIDGEPORT_ABI_H

#include <linux/types.h>

/* Bumped on any change below; pinned maps of another version are refused. */
#define BP_ABI_VERSION 6

/* Per-instance knobs, set in .rodata before load (the same struct in every object). */
struct bp_settings {
	__u64 netns_cookie;    /* the daemon's network namespace: socket hooks act only there */
	__u16 snat_port_first; /* host byte order: masquerade ports, reserved from the host's sockets */
	__u16 snat_port_last;
	__u32 flags;           /* BP_SETTING_* */
};

/* Published ports: (proto, host IP or 0.0.0.0, host port) -> container. */
struct bp_published_key {
	__u32 host_ip;   /* 0 = every host address */
	__u16 host_port;
	__u8 proto;      /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	__u8 pad;
};

/* A routed network's container port, reachable by the container's own address. */
#define BP_PUB_DIRECT (1U << 0)

struct bp_published_value {
	__u32 container_ip;
	__u16 container_port;
	__u8 flags;        /* BP_PUB_* */
	__u8 pad;
	__u32 ifindex;     /* host side of the container's veth */
	__u32 network_id;
	/* Valid while epoch_from <= current epoch < epoch_until (0 = open):
	 * a whole operation becomes visible with one write of the epoch. */
	__u32 epoch_from;
	__u32 epoch_until;
};

/* bp_epoch[0]: the current epoch. */
struct bp_epoch {
	__u32 current;
	__u32 pad;
};

/* Endpoints by IP (bp_endpoints) and by host-side ifindex (bp_endpoint_by_if). */
struct bp_endpoint {
	__u32 ip;
	__u32 ifindex;     /* host side of the veth */
	__u32 network_id;
	__u8 mac[6];
	__u8 pad[2];
};

#define BP_NET_ICC        (1U << 0)
#define BP_NET_MASQUERADE (1U << 1)
#define BP_NET_INTERNAL   (1U << 2)

/* Routed CIDRs a network may have (network create --routed-cidr). */
#define BP_ROUTED_MAX 4

/* Networks by id (the bridge's ifindex). */
struct bp_network {
	__u32 subnet;
	__u32 mask;
	__u32 gateway;
	__u32 bridge_ifindex;
	__u8 bridge_mac[6];
	__u8 pad[2];
	__u32 flags;       /* BP_NET_* */
	/*
	 * Addresses the network exchanges traffic with routed, both ways: not
	 * masqueraded to, and let in directly to any container address and port
	 * (a cluster's pod CIDR). The first n_routed pairs are used.
	 */
	__u32 routed_addr[BP_ROUTED_MAX];
	__u32 routed_mask[BP_ROUTED_MAX];
	__u32 n_routed;
};

/* With icc=false: src may talk to dst on (proto, port); direction says which port. */
#define BP_LINK_DPORT 0 /* parent -> child's exposed port */
#define BP_LINK_SPORT 1 /* child's exposed port -> parent (replies) */

struct bp_link_key {
	__u32 src_ip;
	__u32 dst_ip;
	__u16 port;
	__u8 proto;
	__u8 direction;    /* BP_LINK_* */
};

/* Uplinks by ifindex: the address masquerade uses on them. */
struct bp_uplink {
	__u32 ip;
	__u8 mac[6];
	__u8 pad[2];
};

/* Conntrack, keyed by the tuple as it is on the wire where it is looked up.
 * ICMP echo: sport = id on requests, dport = id on replies. */
struct bp_ct_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * Later fragments of a datagram carry no ports: bp_frags maps the datagram's
 * identity (RFC 791: source, destination, protocol, IP id) to the bp_ct_key its
 * first fragment was tracked under, so they follow the same flow.
 */
struct bp_frag_key {
	__u32 saddr;
	__u32 daddr;
	__u16 id;
	__u8 proto;
	__u8 pad;
};

#define BP_CT_SNAT       (1U << 0) /* rewrite the source to new_saddr:new_sport */
#define BP_CT_DNAT       (1U << 1) /* rewrite the destination to new_daddr:new_dport */
#define BP_CT_REPLY      (1U << 2) /* the reply direction of a flow */
#define BP_CT_MASQUERADE (1U << 3) /* a container's egress flow */
#define BP_CT_PUBLISHED  (1U << 4) /* a flow through a published port (origin says which) */

#define BP_TCP_SYN (1U << 0)
#define BP_TCP_ACK (1U << 1)
#define BP_TCP_FIN (1U << 2)
#define BP_TCP_RST (1U << 3)
#define BP_TCP_TS  (1U << 4) /* in peer_flags: ts_last holds a timestamp (TSval) the original side sent */

struct bp_ct_value {
	__u64 last_seen;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u32 new_saddr;
	__u32 new_daddr;
	__u16 new_sport;
	__u16 new_dport;
	__u32 ifindex;     /* deliver into this endpoint (host-side veth); 0 = route */
	struct bp_published_key origin; /* the published port of the flow, for flushing */
	__u8 flags;        /* BP_CT_* */
	__u8 tcp_flags;    /* BP_TCP_* seen in this direction */
	/* BP_TCP_* the other direction has seen, copied in by each of its packets
	 * from its first FIN or RST on (TCP only), so that one entry says whether
	 * the flow has closed. In a reply entry, BP_TCP_TS says ts_last holds a
	 * timestamp of the original side. */
	__u8 peer_flags;
	__u8 pad;
	/* What the far end's TIME_WAIT remembers of the original side once it
	 * closes (kept in the reply entry of a TCP flow, from the original side's
	 * first FIN on): the highest TSval it sent (peer_flags BP_TCP_TS) and the
	 * sequence number after its FIN. A new SYN may take the reply tuple over
	 * only when the far end would accept it (lib/conntrack.h, bp_tw_accepts):
	 * judged from the reply entry alone, the one a port search reads. */
	__u32 ts_last;
	__u32 seq_end;
	__u32 net_id;      /* a masqueraded flow's network, counted with its packets (0: looked up) */
};

/* Operator deny list (LPM trie): source CIDR, optionally one destination port.
 * Data after prefixlen is matched as a prefix: proto and port first (whole,
 * 0/0 for "any port"), then the address's leading bits. */
struct bp_firewall_key {
	__u32 prefixlen;   /* 32 + CIDR length */
	__u8 proto;
	__u8 pad;
	__u16 port;
	__u32 addr;
};

struct bp_firewall_value {
	__u32 flags;
	__u32 pad;
};

/* Sockets whose destination the socket hooks rewrote, for recvmsg4. */
struct bp_sock_nat_key {
	__u64 cookie;
	__u32 addr;        /* the container side */
	__u16 port;
	__u16 pad;
};

struct bp_sock_nat_value {
	__u32 addr;        /* what the application asked for */
	__u16 port;
	__u16 pad;
};

/* Per-CPU packet and byte counters. */
struct bp_counter {
	__u64 packets;
	__u64 bytes;
};

/*
 * Traffic counters (per-CPU, bytes are L3: the IP packet, as iptables counts).
 * bp_port_stats: per published port and direction, keyed like bp_published_key
 * with the direction in the last byte.
 */
#define BP_DIR_IN 0  /* toward the container (rx for endpoints, replies for masquerade) */
#define BP_DIR_OUT 1 /* from the container (tx for endpoints, masqueraded egress) */

struct bp_port_stats_key {
	__u32 host_ip;
	__u16 host_port;
	__u8 proto;
	__u8 dir;        /* BP_DIR_* */
};

/* bp_endpoint_stats (id = host-side ifindex) and bp_masq_stats (id = network id). */
struct bp_stats_key {
	__u32 id;
	__u32 dir;       /* BP_DIR_* */
};

/* bp_xdp_stats: indexes. */
#define BP_XDP_PASS 0
#define BP_XDP_DROP 1

/* Drop reasons: indexes of bp_drops. Names are the metrics' reason labels. */
enum bp_drop_reason {
	BP_DROP_ICC_DENIED = 0,
	BP_DROP_NETWORK_ISOLATION = 1,
	BP_DROP_INTERNAL_NETWORK = 2,
	BP_DROP_DIRECT_ACCESS = 3,
	BP_DROP_SPOOFED_SOURCE = 4,
	BP_DROP_DENY_LIST = 5,
	BP_DROP_NO_PUBLISHED_PORT = 6,
	BP_DROP_CONNTRACK_FULL = 7,
	BP_DROP_NAT_PORTS_EXHAUSTED = 8,
	BP_DROP_INVALID_PACKET = 9,
	BP_DROP_TUPLE_CLASH = 10, /* a new flow's translated tuple is held by a live flow, and no port of its own is free */
	BP_DROP_STALE_FLOW = 11,  /* a TCP segment other than a SYN, out of a masquerading network, of no flow bridgeport tracks */
	BP_DROP_MAX = 16,
};

/* bp_meta[0]: written by the daemon that created the pins. */
struct bp_meta {
	__u32 abi_version;
	__u32 layout_hash; /* of the structs above, from BTF */
};

/* Map sizes: the control plane reads them from the maps, never assumes them. */
#define BP_PUBLISHED_MAX 262144
#define BP_ENDPOINTS_MAX 65536
#define BP_NETWORKS_MAX 1024
#define BP_LINKS_MAX 65536
#define BP_UPLINKS_MAX 64
#define BP_CT_MAX 262144
#define BP_FIREWALL_MAX 16384
#define BP_SOCK_NAT_MAX 65536
#define BP_LOCAL_ADDRS_MAX 1024
#define BP_FRAGS_MAX 8192
#define BP_PORT_STATS_MAX (2 * BP_PUBLISHED_MAX)
#define BP_ENDPOINT_STATS_MAX (2 * BP_ENDPOINTS_MAX)
#define BP_MASQ_STATS_MAX (2 * BP_NETWORKS_MAX)

#endif
