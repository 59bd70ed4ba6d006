// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup v2 socket hooks: host processes reaching published ports on
 * 127.0.0.1 or a host address. connect4 / sendmsg4 rewrite the destination to
 * the container, recvmsg4 shows UDP replies as coming from the address the
 * application used. Only sockets of the daemon's own network namespace are
 * touched, so several daemons on one machine do not interfere.
 */
#include "lib/common.h"
#include "lib/maps.h"

#define SOCK_PASS 1

static __always_inline int is_local(__be32 addr)
{
	if ((bpf_ntohl(addr) >> 24) == 127)
		return 1;
	return bpf_map_lookup_elem(&bp_local_addrs, &addr) != 0;
}

static __always_inline int ours(struct bpf_sock_addr *ctx)
{
	return bpf_get_netns_cookie(ctx) == SETTINGS.netns_cookie;
}

static __always_inline struct bp_published_value *lookup(struct bpf_sock_addr *ctx)
{
	__u8 proto = ctx->protocol;
	__be32 ip = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	struct bp_published_value *pub = bp_published_lookup(proto, ip, port);
	if (!pub && is_local(ip))
		pub = bp_published_lookup(proto, 0, port);
	if (pub && (pub->flags & BP_PUB_DIRECT))
		return 0;
	return pub;
}

/* Rewrites the destination; for UDP remembers the original for recvmsg4. */
static __always_inline void rewrite(struct bpf_sock_addr *ctx, struct bp_published_value *pub)
{
	if (ctx->protocol == IPPROTO_UDP) {
		struct bp_sock_nat_key k = { .cookie = bpf_get_socket_cookie(ctx), .addr = pub->container_ip, .port = pub->container_port };
		struct bp_sock_nat_value v = { .addr = ctx->user_ip4, .port = (__be16)ctx->user_port };
		bpf_map_update_elem(&bp_sock_nat, &k, &v, BPF_ANY);
	}
	ctx->user_ip4 = pub->container_ip;
	ctx->user_port = pub->container_port;
}

SEC("cgroup/connect4")
int bp_connect4(struct bpf_sock_addr *ctx)
{
	if (!ours(ctx))
		return SOCK_PASS;
	struct bp_published_value *pub = lookup(ctx);
	if (pub)
		rewrite(ctx, pub);
	return SOCK_PASS;
}

SEC("cgroup/sendmsg4")
int bp_sendmsg4(struct bpf_sock_addr *ctx)
{
	if (!ours(ctx))
		return SOCK_PASS;
	struct bp_published_value *pub = lookup(ctx);
	if (pub)
		rewrite(ctx, pub);
	return SOCK_PASS;
}

SEC("cgroup/recvmsg4")
int bp_recvmsg4(struct bpf_sock_addr *ctx)
{
	if (!ours(ctx))
		return SOCK_PASS;
	struct bp_sock_nat_key k = { .cookie = bpf_get_socket_cookie(ctx), .addr = ctx->user_ip4, .port = (__be16)ctx->user_port };
	struct bp_sock_nat_value *v = bpf_map_lookup_elem(&bp_sock_nat, &k);
	if (v) {
		ctx->user_ip4 = v->addr;
		ctx->user_port = v->port;
	}
	return SOCK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
