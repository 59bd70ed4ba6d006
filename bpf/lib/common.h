/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing, checksum-preserving rewrites and counters shared by every program. */
#ifndef BP_COMMON_H
#define BP_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bridgeport_abi.h"

/* linux/icmp.h pulls in libc headers; the two fields used here suffice. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
	} un;
};

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#define AF_INET 2
#define ETH_P_ARP_BE bpf_htons(ETH_P_ARP)
#define ETH_P_IP_BE bpf_htons(ETH_P_IP)
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* One settings struct per object, written into .rodata by the loader. */
const volatile struct bp_settings SETTINGS = {};

/* Offsets inside an IPv4 packet with its L4 header, as the rewrite helpers need them. */
struct bp_packet {
	struct bp_ct_key tuple;   /* as on the wire */
	__u32 l4_off;             /* from the start of the frame */
	__u32 csum_off;           /* L4 checksum; 0 when there is none to fix */
	__u8 tcp_flags;           /* BP_TCP_* of this segment */
	__u8 icmp_type;           /* BP_ICMP_NONE for a later fragment */
	__u8 is_fragment;         /* part of a datagram: more fragments follow, or an offset */
	__u8 later_fragment;      /* an offset: no L4 header; bp_frag_ports finds the ports */
	__u8 l4_short;            /* sound IP header, L4 header cut short (ports read when present) */
	__u8 pad;
	__be16 ip_id;
};

/* No ICMP type: what a later fragment of an ICMP message has (0 is echo reply). */
#define BP_ICMP_NONE 0xff

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))

/* The most header bytes a tc program reads: Ethernet, IPv4 with options, and an
 * ICMP error's own header, inner IPv4 header with options and 8 bytes of L4. */
#define BP_HEADERS_MAX (ETH_HLEN + 60 + 8 + 60 + 8)

/*
 * Direct packet access sees only an skb's linear part. Drivers that put headers
 * in page fragments, and generic XDP (which may hand the skb on as fragments),
 * leave fewer bytes there than the parser needs: pull them in. Callers load
 * skb->data and data_end after this (a pull invalidates earlier pointers).
 */
static __always_inline void bp_pull_headers(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 want = skb->len < BP_HEADERS_MAX ? skb->len : BP_HEADERS_MAX;
	if (data + want > data_end)
		bpf_skb_pull_data(skb, want);
}

static __always_inline int bp_same_mac(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

/*
 * Parses Ethernet + IPv4 + the first L4 header. Returns 0 on success, 1 when the
 * packet is not IPv4 (callers pass it), -1 when it is malformed (with l4_short
 * set, the IP header and the ports, when present, are still filled in).
 */
static __always_inline int bp_parse_ipv4(void *data, void *data_end, struct bp_packet *p)
{
	/* What a caller may read after a -1. */
	p->l4_short = 0;
	p->is_fragment = 0;
	p->later_fragment = 0;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return -1;
	if (eth->h_proto != ETH_P_IP_BE)
		return 1;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	__u32 ihl = ip->ihl * 4;
	p->tuple.saddr = ip->saddr;
	p->tuple.daddr = ip->daddr;
	p->tuple.proto = ip->protocol;
	p->tuple.sport = 0;
	p->tuple.dport = 0;
	p->tuple.pad[0] = p->tuple.pad[1] = p->tuple.pad[2] = 0;
	p->l4_off = ETH_HLEN + ihl;
	p->csum_off = 0;
	p->tcp_flags = 0;
	p->icmp_type = 0;
	p->pad = 0;
	p->ip_id = ip->id;
	p->is_fragment = (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
	p->later_fragment = (ip->frag_off & bpf_htons(IP_OFFSET)) != 0;
	/* Only the first fragment carries the L4 header; later ones find their ports in bp_frags. */
	if (p->later_fragment) {
		p->icmp_type = BP_ICMP_NONE;
		return 0;
	}
	void *l4 = (void *)ip + ihl;
	/* Ports are the first 4 bytes of TCP, UDP and SCTP: read even from a cut-short header. */
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP || ip->protocol == IPPROTO_SCTP) {
		__be16 *ports = l4;
		if ((void *)(ports + 2) <= data_end) {
			p->tuple.sport = ports[0];
			p->tuple.dport = ports[1];
		}
	}
	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end) {
			p->l4_short = 1;
			return -1;
		}
		p->tuple.sport = tcp->source;
		p->tuple.dport = tcp->dest;
		p->csum_off = p->l4_off + offsetof(struct tcphdr, check);
		if (tcp->syn)
			p->tcp_flags |= BP_TCP_SYN;
		if (tcp->ack)
			p->tcp_flags |= BP_TCP_ACK;
		if (tcp->fin)
			p->tcp_flags |= BP_TCP_FIN;
		if (tcp->rst)
			p->tcp_flags |= BP_TCP_RST;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end) {
			p->l4_short = 1;
			return -1;
		}
		p->tuple.sport = udp->source;
		p->tuple.dport = udp->dest;
		p->csum_off = p->l4_off + offsetof(struct udphdr, check);
		break;
	}
	case IPPROTO_SCTP: {
		/* Ports are the first 4 bytes, like TCP and UDP; the CRC32c does not cover IP. */
		__be16 *ports = l4;
		if ((void *)(ports + 2) > data_end) {
			p->l4_short = 1;
			return -1;
		}
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *icmp = l4;
		if ((void *)(icmp + 1) > data_end) {
			p->l4_short = 1;
			return -1;
		}
		p->icmp_type = icmp->type;
		p->csum_off = p->l4_off + offsetof(struct icmphdr, checksum);
		if (icmp->type == ICMP_ECHO)
			p->tuple.sport = icmp->un.echo.id;
		else if (icmp->type == ICMP_ECHOREPLY)
			p->tuple.dport = icmp->un.echo.id;
		break;
	}
	default:
		break;
	}
	return 0;
}

/* Rewrites the IPv4 source or destination address, fixing the IP and L4 checksums. */
static __always_inline int bp_rewrite_addr(struct __sk_buff *skb, struct bp_packet *p, __u32 off, __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (p->csum_off && p->tuple.proto != IPPROTO_ICMP) {
		__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);
		if (p->tuple.proto == IPPROTO_UDP)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, p->csum_off, old, new, flags))
			return -1;
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/* Rewrites a port (or the ICMP echo id) at offset `off`, fixing the L4 checksum. */
static __always_inline int bp_rewrite_port(struct __sk_buff *skb, struct bp_packet *p, __u32 off, __be16 old, __be16 new)
{
	if (old == new)
		return 0;
	if (p->csum_off) {
		__u64 flags = sizeof(new);
		if (p->tuple.proto == IPPROTO_UDP)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, p->csum_off, old, new, flags))
			return -1;
	}
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/* Where the source / destination port (or echo id) lives for this packet. */
static __always_inline __u32 bp_sport_off(struct bp_packet *p)
{
	if (p->tuple.proto == IPPROTO_ICMP)
		return p->l4_off + offsetof(struct icmphdr, un.echo.id);
	return p->l4_off;
}

static __always_inline __u32 bp_dport_off(struct bp_packet *p)
{
	if (p->tuple.proto == IPPROTO_ICMP)
		return p->l4_off + offsetof(struct icmphdr, un.echo.id);
	return p->l4_off + 2;
}

/* Sets both MAC addresses of the frame. */
static __always_inline int bp_set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	if (bpf_skb_store_bytes(skb, 0, dst, ETH_ALEN, 0))
		return -1;
	return bpf_skb_store_bytes(skb, ETH_ALEN, src, ETH_ALEN, 0);
}

#endif
