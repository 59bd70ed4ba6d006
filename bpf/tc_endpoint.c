// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress on each host-side veth: traffic from a container.
 *  - anti-spoofing: only the endpoint's own MAC and IP;
 *  - ICMP errors about a tracked flow: translated back like its replies;
 *  - tracked flows: the entry's rewrite (replies through published ports,
 *    further packets of masqueraded flows), delivered into a container or routed out;
 *  - published ports (hairpin, also to itself): DNAT, SNAT to the gateway when
 *    the container reaches its own port;
 *  - other containers: ICC policy and link permits on the same network,
 *    isolation between networks; delivered by redirect to the peer;
 *  - outside: dropped for internal networks, masqueraded to the uplink address
 *    (ports from the reserved range), or routed as is (masquerade off);
 *  - the host itself (gateway, host addresses): passes to the stack.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/conntrack.h"
#include "lib/deliver.h"
#include "lib/icmp_error.h"

struct arp_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__be32 sip;
	__u8 tha[ETH_ALEN];
	__be32 tip;
} __attribute__((packed));

static __always_inline int drop(struct __sk_buff *skb, enum bp_drop_reason reason)
{
	bp_count_drop(reason, skb->len);
	return TC_ACT_SHOT;
}

/* With icc=false, may src talk to dst on this port (a link permit, either direction)? */
static __always_inline int link_permits(struct bp_packet *p, __be32 daddr, __be16 dport)
{
	struct bp_link_key k = { .src_ip = p->tuple.saddr, .dst_ip = daddr, .port = dport, .proto = p->tuple.proto, .direction = BP_LINK_DPORT };
	if (bpf_map_lookup_elem(&bp_links, &k))
		return 1;
	k.port = p->tuple.sport;
	k.direction = BP_LINK_SPORT;
	return bpf_map_lookup_elem(&bp_links, &k) != 0;
}

/* Same-network policy: icc, or a link permit. */
static __always_inline int icc_allows(struct bp_network *net, struct bp_packet *p, __be32 daddr, __be16 dport)
{
	if (net->flags & BP_NET_ICC)
		return 1;
	return link_permits(p, daddr, dport);
}

static __always_inline int deliver_flow(struct __sk_buff *skb, struct bp_packet *p, struct bp_ct_value *ct, __u32 bridge_ifindex,
					__u32 net_id)
{
	bp_ct_touch(ct, p);
	bp_count_flow(ct, skb->len, net_id);
	/* What delivery needs, read before the rewrite (another CPU may change the entry). */
	__u8 flags = ct->flags;
	__u32 ifindex = ct->ifindex;
	__be32 saddr = ct->new_saddr, daddr = ct->new_daddr;
	__be16 sport = ct->new_sport, dport = ct->new_dport;
	if (bp_ct_apply(skb, p, ct))
		return drop(skb, BP_DROP_INVALID_PACKET);
	if (flags & BP_CT_SNAT) {
		p->tuple.saddr = saddr;
		p->tuple.sport = sport;
	}
	if (flags & BP_CT_DNAT) {
		p->tuple.daddr = daddr;
		p->tuple.dport = dport;
	}
	if (ifindex)
		return bp_deliver_to_endpoint(skb, p->tuple.daddr);
	return bp_deliver_routed(skb, p, bridge_ifindex);
}

/* Creates the flow built in the scratch space (bp_new_flow) and delivers its first packet. */
static __always_inline int deliver_new_flow(struct __sk_buff *skb, struct bp_packet *p, __u64 ports, struct bp_network *net, struct bp_endpoint *me)
{
	int reason = bp_ct_create(skb, p, ports);
	if (reason)
		return drop(skb, reason);
	struct bp_ct_value *ct = bpf_map_lookup_elem(&bp_ct, &p->tuple);
	if (!ct)
		return drop(skb, BP_DROP_CONNTRACK_FULL);
	return deliver_flow(skb, p, ct, net->bridge_ifindex, me->network_id);
}

/* A published port reached from a container: hairpin DNAT (and SNAT to the gateway for itself). */
static __always_inline int hairpin(struct __sk_buff *skb, struct bp_packet *p, struct bp_endpoint *me, struct bp_network *net,
				   struct bp_published_value *pub, __be32 pub_ip)
{
	if (pub->network_id == me->network_id) {
		if (!icc_allows(net, p, pub->container_ip, pub->container_port))
			return drop(skb, BP_DROP_ICC_DENIED);
	} else if (net->flags & BP_NET_INTERNAL) {
		return drop(skb, BP_DROP_INTERNAL_NETWORK);
	}
	struct bp_scratch *sc = bp_new_flow(skb, p);
	if (!sc)
		return drop(skb, BP_DROP_CONNTRACK_FULL);
	bp_published_flow(sc, p, pub, pub_ip, me->ifindex);
	if (pub->container_ip == p->tuple.saddr) {
		/* To itself: the reply must come back through us, so the source becomes the gateway. */
		sc->orig.flags |= BP_CT_SNAT;
		sc->orig.new_saddr = net->gateway;
		sc->orig.new_sport = p->tuple.sport;
		sc->reply.flags |= BP_CT_DNAT;
		sc->reply.new_daddr = p->tuple.saddr;
		sc->reply.new_dport = p->tuple.sport;
	}
	return deliver_new_flow(skb, p, BP_CLASH_PORTS, net, me);
}

/*
 * Egress with the source rewritten to the uplink's address and a port of the
 * reserved range (bp_ct_create): a port is in use only toward the same remote
 * IP:port (ports are reused across remote endpoints, as connect() does), and a
 * closed flow's port goes to a new connection only when the remote's
 * TIME_WAIT would accept its SYN (bp_tw_accepts).
 */
static __always_inline int masquerade(struct __sk_buff *skb, struct bp_packet *p, struct bp_endpoint *me, struct bp_network *net)
{
	struct bp_scratch *sc = bp_new_flow(skb, p);
	if (!sc)
		return drop(skb, BP_DROP_CONNTRACK_FULL);
	struct bpf_fib_lookup *fib = &sc->fib;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET;
	fib->l4_protocol = p->tuple.proto;
	fib->ipv4_src = p->tuple.saddr;
	fib->ipv4_dst = p->tuple.daddr;
	fib->ifindex = net->bridge_ifindex;
	long rc = bpf_fib_lookup(skb, fib, sizeof(*fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK;
	__u32 out = fib->ifindex;
	struct bp_uplink *up = bpf_map_lookup_elem(&bp_uplinks, &out);
	if (!up)
		return TC_ACT_OK; /* not out an uplink: bridgeport has no address to use there */

	bp_masquerade_flow(sc, p, up->ip, me->ifindex, me->network_id);
	__u32 first = SETTINGS.snat_port_first, last = SETTINGS.snat_port_last;
	if (!first || last < first)
		return drop(skb, BP_DROP_NAT_PORTS_EXHAUSTED);
	/* The search starts at a hash of the container's own tuple: when the
	 * container reuses a source port toward the same server, the flow tends
	 * to get the same port back (the server sees the same 4-tuple, with the
	 * timestamps of the same socket pair). Linux NAT keeps the source port
	 * itself for the same reason; bridgeport's ports come from a range
	 * reserved from the host's own sockets, see README. */
	return deliver_new_flow(skb, p, BP_PORTS(first, last - first + 1), net, me);
}

/* Egress of a routed network: no rewrite, but tracked so replies may come in. */
static __always_inline int routed_egress(struct __sk_buff *skb, struct bp_packet *p, struct bp_endpoint *me, struct bp_network *net)
{
	struct bp_scratch *sc = bp_new_flow(skb, p);
	if (!sc)
		return drop(skb, BP_DROP_CONNTRACK_FULL);
	sc->reply.flags = BP_CT_REPLY;
	sc->reply.ifindex = me->ifindex;
	/* Rewritten only when its reply tuple clashed with another flow's. */
	return deliver_new_flow(skb, p, BP_CLASH_PORTS, net, me);
}

/*
 * A later fragment whose first fragment was not seen (out of order, or its
 * bp_frags entry evicted): no ports, so no flow to follow and nothing to
 * create. Only what needs no ports lets it through.
 */
static __always_inline int unknown_fragment(struct __sk_buff *skb, struct bp_packet *p, struct bp_endpoint *me, struct bp_network *net)
{
	__be32 daddr = p->tuple.daddr;
	struct bp_endpoint *peer = bpf_map_lookup_elem(&bp_endpoints, &daddr);
	if (peer) {
		if (peer->network_id != me->network_id)
			return drop(skb, BP_DROP_NETWORK_ISOLATION);
		if (!(net->flags & BP_NET_ICC))
			return drop(skb, BP_DROP_ICC_DENIED);
		if (bp_set_macs(skb, peer->mac, me->mac))
			return TC_ACT_SHOT;
		bp_count_endpoint(peer->ifindex, BP_DIR_IN, skb->len);
		return bpf_redirect_peer(peer->ifindex, 0);
	}
	if (bp_is_local(daddr) || (daddr & net->mask) == net->subnet || daddr == 0xffffffff || (bpf_ntohl(daddr) >> 28) == 0xe)
		return TC_ACT_OK;
	if (net->flags & BP_NET_INTERNAL)
		return drop(skb, BP_DROP_INTERNAL_NETWORK);
	/* Masqueraded, it would leave with the container's own address. */
	int natable = p->tuple.proto == IPPROTO_TCP || p->tuple.proto == IPPROTO_UDP || p->tuple.proto == IPPROTO_ICMP;
	if (natable && (net->flags & BP_NET_MASQUERADE) && !bp_net_routed(net, daddr))
		return drop(skb, BP_DROP_INVALID_PACKET);
	return TC_ACT_OK;
}

SEC("tc")
int bp_endpoint_ingress(struct __sk_buff *skb)
{
	bp_pull_headers(skb);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 ifindex = skb->ifindex;
	struct bp_endpoint *me = bpf_map_lookup_elem(&bp_endpoint_by_if, &ifindex);
	if (!me)
		return TC_ACT_OK;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return drop(skb, BP_DROP_INVALID_PACKET);
	if (!bp_same_mac(eth->h_source, me->mac))
		return drop(skb, BP_DROP_SPOOFED_SOURCE);
	if (eth->h_proto == ETH_P_ARP_BE) {
		struct arp_ipv4 *arp = (void *)(eth + 1);
		if ((void *)(arp + 1) > data_end)
			return drop(skb, BP_DROP_INVALID_PACKET);
		/* 0.0.0.0 is an address probe (RFC 5227), not a claim. */
		if (arp->sip != me->ip && arp->sip != 0)
			return drop(skb, BP_DROP_SPOOFED_SOURCE);
		if (!bp_same_mac(arp->sha, me->mac))
			return drop(skb, BP_DROP_SPOOFED_SOURCE);
		return TC_ACT_OK;
	}

	struct bp_packet p;
	int rc = bp_parse_ipv4(data, data_end, &p);
	if (rc > 0)
		return TC_ACT_OK;
	if (rc < 0)
		return drop(skb, BP_DROP_INVALID_PACKET);
	if (p.tuple.saddr != me->ip)
		return drop(skb, BP_DROP_SPOOFED_SOURCE);
	bp_count_endpoint(ifindex, BP_DIR_OUT, skb->len);

	__u32 net_id = me->network_id;
	struct bp_network *net = bpf_map_lookup_elem(&bp_networks, &net_id);
	if (!net)
		return TC_ACT_OK;
	if (!bp_frag_ports(&p))
		return unknown_fragment(skb, &p, me, net);

	struct bp_ct_value *ct = bp_ct_lookup(skb, &p);
	if (ct)
		return deliver_flow(skb, &p, ct, net->bridge_ifindex, me->network_id);

	if (bp_is_icmp_error(&p)) {
		struct bp_ct_value v;
		int t = bp_icmp_error_translate(skb, &p, &v);
		if (t < 0)
			return drop(skb, BP_DROP_INVALID_PACKET);
		if (t > 0 && (v.flags & BP_CT_MASQUERADE))
			bp_count_flow(&v, skb->len, me->network_id);
		if (t > 0)
			return v.ifindex ? bp_deliver_to_endpoint(skb, p.tuple.daddr) : bp_deliver_routed(skb, &p, net->bridge_ifindex);
	}

	__be32 daddr = p.tuple.daddr;
	int local = bp_is_local(daddr);
	if (p.tuple.proto == IPPROTO_TCP || p.tuple.proto == IPPROTO_UDP || p.tuple.proto == IPPROTO_SCTP) {
		struct bp_published_value *pub = bp_published_lookup(p.tuple.proto, daddr, p.tuple.dport);
		__be32 pub_ip = daddr;
		if (!pub && local) {
			pub = bp_published_lookup(p.tuple.proto, 0, p.tuple.dport);
			pub_ip = 0;
		}
		/* Direct entries stand for a routed network's ports from outside, not hairpin. */
		if (pub && !(pub->flags & BP_PUB_DIRECT))
			return hairpin(skb, &p, me, net, pub, pub_ip);
	}

	struct bp_endpoint *peer = bpf_map_lookup_elem(&bp_endpoints, &daddr);
	if (peer) {
		if (peer->network_id != me->network_id)
			return drop(skb, BP_DROP_NETWORK_ISOLATION);
		if (!icc_allows(net, &p, daddr, p.tuple.dport))
			return drop(skb, BP_DROP_ICC_DENIED);
		if (bp_set_macs(skb, peer->mac, me->mac))
			return TC_ACT_SHOT;
		bp_count_endpoint(peer->ifindex, BP_DIR_IN, skb->len);
		return bpf_redirect_peer(peer->ifindex, 0);
	}

	/* The host itself: the gateway, or any address of the namespace. */
	if (local || (daddr & net->mask) == net->subnet)
		return TC_ACT_OK;
	/* Limited and multicast destinations are for the stack to judge. */
	if (daddr == 0xffffffff || (bpf_ntohl(daddr) >> 28) == 0xe)
		return TC_ACT_OK;
	if (net->flags & BP_NET_INTERNAL)
		return drop(skb, BP_DROP_INTERNAL_NETWORK);
	/* Only what carries ports (or an echo id) can share the uplink's address. */
	int natable = p.tuple.proto == IPPROTO_TCP || p.tuple.proto == IPPROTO_UDP ||
		      (p.tuple.proto == IPPROTO_ICMP && p.icmp_type == ICMP_ECHO);
	if (!natable)
		return TC_ACT_OK;
	/* A routed CIDR (a cluster's other pods) sees the container's own address. */
	if ((net->flags & BP_NET_MASQUERADE) && !bp_net_routed(net, daddr))
		return masquerade(skb, &p, me, net);
	return routed_egress(skb, &p, me, net);
}

/*
 * tc egress on each host-side veth: what the bridge or the host stack delivers
 * into the container (redirected packets skip this hook and are counted where
 * they are redirected). Counts only.
 */
SEC("tc")
int bp_endpoint_egress(struct __sk_buff *skb)
{
	if (skb->protocol != ETH_P_IP_BE)
		return TC_ACT_OK;
	__u32 ifindex = skb->ifindex;
	struct bp_endpoint *me = bpf_map_lookup_elem(&bp_endpoint_by_if, &ifindex);
	__be32 daddr;
	/* Addressed to the container itself: broadcast and multicast the bridge floods are not its traffic. */
	if (me && !bpf_skb_load_bytes(skb, ETH_HLEN + offsetof(struct iphdr, daddr), &daddr, sizeof(daddr)) && daddr == me->ip)
		bp_count_endpoint(ifindex, BP_DIR_IN, skb->len);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
