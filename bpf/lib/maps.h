/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map, pinned by name under the instance's bpffs folder so all objects
 * share them and a daemon restart re-adopts them. Declared in one place: an
 * object that does not use a map still agrees on its shape.
 */
#ifndef BP_MAPS_H
#define BP_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_PUBLISHED_MAX);
	__type(key, struct bp_published_key);
	__type(value, struct bp_published_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_published SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bp_epoch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_epoch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_ENDPOINTS_MAX);
	__type(key, __u32);
	__type(value, struct bp_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_ENDPOINTS_MAX);
	__type(key, __u32);
	__type(value, struct bp_endpoint);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_endpoint_by_if SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_NETWORKS_MAX);
	__type(key, __u32);
	__type(value, struct bp_network);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_networks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_LINKS_MAX);
	__type(key, struct bp_link_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_links SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_UPLINKS_MAX);
	__type(key, __u32);
	__type(value, struct bp_uplink);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_uplinks SEC(".maps");

/* Host addresses of the instance's namespace, for the socket hooks' "is this local". */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BP_LOCAL_ADDRS_MAX);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_local_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BP_CT_MAX);
	__type(key, struct bp_ct_key);
	__type(value, struct bp_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_ct SEC(".maps");

/* What a TCP segment says of its sender's clock and sequence space. */
struct bp_tcp_stamp {
	__u32 seq;     /* host byte order, like every field here */
	__u32 seq_end; /* seq + payload + SYN + FIN: the receiver's next rcv_nxt */
	__u32 tsval;
	__u32 has_ts;  /* a timestamp option (RFC 7323) was present */
	__u32 is_syn;  /* a SYN opening a connection (stamp of a new flow) */
};

/*
 * Per-CPU scratch space for what does not fit the 512-byte stack (the main
 * program's frame and those of the global functions it calls add up): a
 * segment's TCP header and options, and the new flow being built (with the
 * route lookup that picks a masqueraded flow's uplink).
 */
struct bp_scratch {
	struct tcphdr tcp;
	__u8 tcp_opts[64];
	struct bp_tcp_stamp syn;
	struct bp_ct_value orig;
	struct bp_ct_value reply;
	struct bp_ct_key rkey;
	struct bp_ct_key okey;
	struct bpf_fib_lookup fib;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bp_scratch);
} bp_scratch SEC(".maps");

/* Fragmented datagrams in flight: the flow of their first fragment (see bp_frag_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BP_FRAGS_MAX);
	__type(key, struct bp_frag_key);
	__type(value, struct bp_ct_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BP_FIREWALL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bp_firewall_key);
	__type(value, struct bp_firewall_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_firewall SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BP_SOCK_NAT_MAX);
	__type(key, struct bp_sock_nat_key);
	__type(value, struct bp_sock_nat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_sock_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BP_DROP_MAX);
	__type(key, __u32);
	__type(value, struct bp_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bp_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BP_PORT_STATS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bp_port_stats_key);
	__type(value, struct bp_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_port_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BP_ENDPOINT_STATS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bp_stats_key);
	__type(value, struct bp_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_endpoint_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BP_MASQ_STATS_MAX);
	__type(key, struct bp_stats_key);
	__type(value, struct bp_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_masq_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bp_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bp_xdp_stats SEC(".maps");

/* `len` is the frame's length; counters keep L3 bytes (the IP packet), as iptables does. */
static __always_inline void bp_count(struct bp_counter *c, __u32 len)
{
	c->packets += 1;
	c->bytes += len > ETH_HLEN ? len - ETH_HLEN : 0;
}

static __always_inline void bp_count_drop(enum bp_drop_reason reason, __u32 len)
{
	__u32 key = reason;
	struct bp_counter *c = bpf_map_lookup_elem(&bp_drops, &key);
	if (c)
		bp_count(c, len);
}

/* Adds a packet to a per-CPU hash counter, creating it on first use. */
static __always_inline void bp_count_in(void *map, const void *key, __u32 len)
{
	struct bp_counter *c = bpf_map_lookup_elem(map, key);
	if (!c) {
		struct bp_counter zero = {};
		bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(map, key);
		if (!c)
			return;
	}
	bp_count(c, len);
}

static __always_inline void bp_count_port(const struct bp_published_key *o, __u8 dir, __u32 len)
{
	struct bp_port_stats_key k = { .host_ip = o->host_ip, .host_port = o->host_port, .proto = o->proto, .dir = dir };
	bp_count_in(&bp_port_stats, &k, len);
}

static __always_inline void bp_count_endpoint(__u32 ifindex, __u32 dir, __u32 len)
{
	struct bp_stats_key k = { .id = ifindex, .dir = dir };
	bp_count_in(&bp_endpoint_stats, &k, len);
}

static __always_inline void bp_count_masq(__u32 network_id, __u32 dir, __u32 len)
{
	struct bp_stats_key k = { .id = network_id, .dir = dir };
	bp_count_in(&bp_masq_stats, &k, len);
}

/* The published port for (proto, ip, port) if it is valid in the current epoch. */
static __always_inline struct bp_published_value *bp_published_lookup(__u8 proto, __be32 ip, __be16 port)
{
	struct bp_published_key key = { .host_ip = ip, .host_port = port, .proto = proto };
	struct bp_published_value *v = bpf_map_lookup_elem(&bp_published, &key);
	if (!v)
		return 0;
	__u32 zero = 0;
	struct bp_epoch *e = bpf_map_lookup_elem(&bp_epoch, &zero);
	__u32 now = e ? e->current : 0;
	if (v->epoch_from > now || (v->epoch_until && now >= v->epoch_until))
		return 0;
	return v;
}

#endif
