//! `X-Forwarded-For` as a trusted proxy passes it on: never a panic, and the client address is
//! the peer itself unless the peer is a trusted proxy — a client can never name an address that
//! is a trusted proxy's to dodge its own rate limit or allow-list, except by connecting from one.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use tradehook::ingest::guard::{client_ip, ip_in, parse_allow_list};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    peer: [u8; 16],
    peer_v4: bool,
    forwarded: Vec<&'a [u8]>,
    proxies: Vec<&'a str>,
}

fuzz_target!(|input: Input<'_>| {
    let peer = if input.peer_v4 {
        IpAddr::V4(Ipv4Addr::new(input.peer[0], input.peer[1], input.peer[2], input.peer[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(input.peer))
    };
    let mut headers = HeaderMap::new();
    for value in &input.forwarded {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append("x-forwarded-for", value);
        }
    }
    let proxies: Vec<IpNet> = input
        .proxies
        .iter()
        .chain(["10.0.0.0/8"].iter())
        .filter_map(|entry| parse_allow_list(&[(*entry).to_owned()]).ok())
        .flatten()
        .collect();
    let client = client_ip(peer, &headers, &proxies);
    let untrusted = client_ip(peer, &headers, &[]);
    assert_eq!(untrusted.to_canonical(), peer.to_canonical(), "no trusted proxies: the peer is the client");
    if !ip_in(&proxies, peer) {
        assert_eq!(client, untrusted, "an untrusted peer's X-Forwarded-For was believed");
    } else if client != untrusted {
        // Behind a trusted proxy: an address from the header, and a trusted one only when every
        // hop after it is trusted too (the chain ran out of untrusted addresses).
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        assert!(hops.contains(&client.to_canonical()), "{client} is not from the header {hops:?}");
    }
});
