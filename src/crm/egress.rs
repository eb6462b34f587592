//! The one outbound HTTP policy: every call scorehook makes (CRM APIs,
//! `actions_url`, `webhook` actions, id-only event resolution) goes through
//! a client built here and a URL checked here.
//!
//! A tenant's admin may name any URL, so without a policy scorehook would
//! call whatever it is told to: the cloud's metadata service, a database on
//! loopback, the operator's private network. The policy: `https` only; a
//! host that is an address, or resolves to one, outside the public internet
//! (loopback, link-local, RFC 1918, CGNAT, unique-local, multicast,
//! unspecified, broadcast, and those inside IPv4-mapped or NAT64 forms) is
//! refused; the connection is made to the addresses the check passed (the
//! resolver is the check), so a name that changes its answer between check
//! and connect (DNS rebinding) cannot pass; redirects are never followed (a
//! 3xx is a permanent failure naming its status), so no credential is
//! re-sent to a host nobody configured. Plain `http` and private targets
//! are for local development and tests only, and only the operator can
//! allow them: `SCOREHOOK_ALLOW_PRIVATE_TARGETS=1`, never a tenant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

/// The operator setting that allows plain `http` and private targets.
pub const ALLOW_PRIVATE_VAR: &str = "SCOREHOOK_ALLOW_PRIVATE_TARGETS";

/// Whether private targets and plain `http` are allowed (the operator's
/// setting); public `https` targets always are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Egress {
    pub allow_private: bool,
}

/// Why a target is refused; the text is all a tenant sees of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("only https:// targets are allowed (the operator may allow http for local development)")]
    Scheme,
    #[error("the URL holds a user name or password: put credentials in the crm settings")]
    Credentials,
    #[error(
        "the target is not on the public internet (a loopback, private, link-local or otherwise reserved address)"
    )]
    Private,
    #[error("the target's host name did not resolve")]
    Unresolved,
    #[error("the host is not one of {provider}'s API hosts ({hosts})")]
    NotProviderHost { provider: &'static str, hosts: String },
}

impl Egress {
    /// Only public `https` targets: the default everywhere.
    pub const PUBLIC_ONLY: Egress = Egress { allow_private: false };
    /// Also private targets and plain `http`: local development and tests.
    pub const ALLOW_PRIVATE: Egress = Egress { allow_private: true };

    /// From `SCOREHOOK_ALLOW_PRIVATE_TARGETS`'s value (`1`/`true` or `0`/`false`; unset is `false`).
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("" | "0" | "false") => Ok(Self::PUBLIC_ONLY),
            Some("1" | "true") => Ok(Self::ALLOW_PRIVATE),
            Some(other) => Err(format!("{ALLOW_PRIVATE_VAR} must be 1, true, 0 or false, not {other:?}")),
        }
    }

    /// Checks what can be checked without a lookup: an absolute URL, its
    /// scheme, no credentials in it, and a host that is not a refused
    /// address. Names are checked again at connect time, by the resolver.
    pub fn check(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::NotAUrl)?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(Refused::Scheme),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused::Credentials);
        }
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or(Refused::NotAUrl)?;
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| !self.allow_private && !is_public(ip)) {
            return Err(Refused::Private);
        }
        Ok(parsed)
    }

    /// [`Egress::check`], and for a CRM's API also that the host is one of
    /// the provider's own (`hosts`, see [`host_matches`]). The operator's
    /// setting lifts the host rule with the rest, for local fakes.
    pub fn check_api(&self, url: &str, provider: &'static str, hosts: &[&str]) -> Result<reqwest::Url, Refused> {
        let parsed = self.check(url)?;
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        if self.allow_private || hosts.iter().any(|rule| host_matches(&host, rule)) {
            return Ok(parsed);
        }
        Err(Refused::NotProviderHost { provider, hosts: hosts.join(", ") })
    }

    /// The HTTP client every outbound call uses: no redirects, `https`
    /// only and the checking resolver unless private targets are allowed.
    pub fn client(&self, timeout: Duration, connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("scorehook/", env!("CARGO_PKG_VERSION")));
        let builder = match self.allow_private {
            true => builder,
            false => builder.https_only(true).dns_resolver(Arc::new(PublicResolver)),
        };
        builder.build()
    }
}

/// A URL as reads and error texts show it: the query (which may carry a
/// token) becomes `***`, and a fragment is dropped.
pub fn redact_query(url: &str) -> String {
    let (without_fragment, _) = url.split_once('#').unwrap_or((url, ""));
    match without_fragment.split_once('?') {
        Some((path, query)) if !query.is_empty() => format!("{path}?***"),
        Some((path, _)) => path.to_owned(),
        None => without_fragment.to_owned(),
    }
}

/// The policy's refusal inside a transport error, if that is what it is.
pub fn refusal(error: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = current.source();
    }
    None
}

/// Resolves a name and keeps only public addresses: reqwest then connects
/// to exactly those, so what was checked is what is reached.
struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let refuse = |why: Refused| -> Box<dyn std::error::Error + Send + Sync> { Box::new(why) };
            let found = tokio::net::lookup_host((host.as_str(), 0)).await.map_err(|_| refuse(Refused::Unresolved))?;
            let found: Vec<SocketAddr> = found.collect();
            if found.is_empty() {
                return Err(refuse(Refused::Unresolved));
            }
            // One refused address refuses the name: a public answer beside a
            // private one is how a rebinding attempt looks.
            if found.iter().any(|addr| !is_public(addr.ip())) {
                return Err(refuse(Refused::Private));
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Whether `host` (lowercase) is covered by `rule`: `hubapi.com` covers
/// `hubapi.com` and every name under it; `bitrix24.*` covers every name
/// under `bitrix24.<zone>`, a zone being one or two labels (`de`, `com.br`).
pub fn host_matches(host: &str, rule: &str) -> bool {
    let host = host.trim_end_matches('.');
    match rule.strip_suffix(".*") {
        Some(brand) => {
            let labels: Vec<&str> = host.split('.').collect();
            let n = labels.len();
            let under = |zone_labels: usize| n > zone_labels + 1 && labels[n - zone_labels - 1] == brand;
            under(1) || (under(2) && labels[n - 2].len() <= 3)
        }
        None => host == rule || host.strip_suffix(rule).is_some_and(|rest| rest.ends_with('.')),
    }
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved for future use
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7])));
    }
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || segments[0] == 0x2001 && segments[1] == 0x0db8 // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]; // IPv4-compatible (deprecated), ::a.b.c.d
    !reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_redacted() {
        assert_eq!(redact_query("https://h.example/in?token=s3cret&x=1"), "https://h.example/in?***");
        assert_eq!(redact_query("https://h.example/in?#frag"), "https://h.example/in");
        assert_eq!(redact_query("https://h.example/in"), "https://h.example/in");
    }

    #[test]
    fn provider_hosts_cover_their_names_and_nothing_else() {
        for (host, rule) in [
            ("hubapi.com", "hubapi.com"),
            ("api.hubapi.com", "hubapi.com"),
            ("api-eu1.hubapi.com", "hubapi.com"),
            ("acme.bitrix24.de", "bitrix24.*"),
            ("acme.bitrix24.com.br", "bitrix24.*"),
            ("acme.bitrix24.com.", "bitrix24.*"),
        ] {
            assert!(host_matches(host, rule), "{host} under {rule}");
        }
        for (host, rule) in [
            ("evilhubapi.com", "hubapi.com"),
            ("hubapi.com.evil.io", "hubapi.com"),
            ("bitrix24.de", "bitrix24.*"),
            ("acme.bitrix24.evil.example", "bitrix24.*"),
            ("bitrix24.de.evil.io", "bitrix24.*"),
        ] {
            assert!(!host_matches(host, rule), "{host} is not under {rule}");
        }
        let public = Egress::PUBLIC_ONLY;
        let hosts = ["hubapi.com"];
        assert!(public.check_api("https://API.hubapi.com/crm", "hubspot", &hosts).is_ok());
        let refused = public.check_api("https://example.com/crm", "hubspot", &hosts).unwrap_err();
        assert_eq!(refused.to_string(), "the host is not one of hubspot's API hosts (hubapi.com)");
    }

    #[test]
    fn reserved_addresses_in_every_form_are_not_public() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
        ] {
            assert!(!is_public(refused.parse().unwrap()), "{refused} passed");
        }
        for allowed in ["1.1.1.1", "104.18.2.3", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(is_public(allowed.parse().unwrap()), "{allowed} refused");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_address() {
        let public = Egress::PUBLIC_ONLY;
        assert!(public.check("https://api.hubapi.com/crm/v3").is_ok());
        assert_eq!(public.check("http://api.hubapi.com").unwrap_err(), Refused::Scheme);
        for url in ["file:///etc/passwd", "gopher://x:70/", "ftp://x/"] {
            assert_eq!(public.check(url).unwrap_err(), Refused::Scheme, "{url}");
        }
        assert_eq!(public.check("not a url").unwrap_err(), Refused::NotAUrl);
        assert_eq!(public.check("https://169.254.169.254/latest").unwrap_err(), Refused::Private);
        assert_eq!(public.check("https://[::1]:8443/").unwrap_err(), Refused::Private);
        assert_eq!(public.check("https://0.0.0.0/").unwrap_err(), Refused::Private);
        assert_eq!(public.check("https://u:p@api.hubapi.com/").unwrap_err(), Refused::Credentials);
        let local = Egress::ALLOW_PRIVATE;
        assert!(local.check("http://127.0.0.1:4000/actions").is_ok());
        assert!(local.check_api("http://127.0.0.1:4000", "hubspot", &["hubapi.com"]).is_ok(), "fakes, locally");
        assert_eq!(local.check("file:///etc/passwd").unwrap_err(), Refused::Scheme, "never another scheme");
    }
}
