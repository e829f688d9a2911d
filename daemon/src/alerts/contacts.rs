//! Reaching people: a routed event's person recipients (certificate
//! contacts, route and escalation contacts) turned into addresses through
//! the contact directory.
//!
//! [`Router`](super::routing::Router) decides which channels an event goes
//! to and names the people on its person channels (e-mail, SMS) as
//! certificates and routes name them (`ssladmin@example.com`, `sam`).
//! [`Directory::resolve`] then, for each such name:
//! - with a contact entry (or, failing that, a user of that name): drops it
//!   when the entry lists event types and this is not one of them; sends it
//!   only through the entry's `channels` when it lists any (adding the
//!   channel when routing had not picked it); addresses it by the entry's
//!   e-mail on e-mail channels (the name itself when it is an address) and by
//!   its phone on SMS channels, dropping it from a channel it has no address
//!   for;
//! - without one: keeps it on e-mail channels as written when it is an
//!   address, as before contacts existed.
//!
//! An SMS channel texts its configured `to` as before; each person that
//! asked for it by name gets a delivery of their own to their phone (see
//! [`Resolved`]).

use std::collections::{BTreeMap, HashMap};

use certkeeper_integrations::Event;
use certkeeper_integrations::config::ChannelConfig;
use certkeeper_integrations::render::kind_name;
use certkeeper_store::accounts::User;
use certkeeper_store::contacts::Contact;

use super::routing::Target;

/// How a channel reaches people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// By e-mail address.
    Email,
    /// By phone number, one delivery per number.
    Phone,
    /// Not per person (chat, tickets, webhooks).
    None,
}

impl Reach {
    /// How `channel` reaches people.
    pub fn of(channel: &ChannelConfig) -> Reach {
        match channel {
            ChannelConfig::Email(_) => Reach::Email,
            ChannelConfig::Sms(_) => Reach::Phone,
            _ => Reach::None,
        }
    }
}

/// The contact entries and users, by lowercase name.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    entries: HashMap<String, Contact>,
}

/// A target after resolution: one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The target (its recipients are addresses now).
    pub target: Target,
    /// For a delivery to one person's phone: the number, which also tells
    /// this delivery apart from the channel's own.
    pub person: Option<String>,
}

impl Directory {
    /// The directory of `contacts`, with `users` filling in names no
    /// contact entry has.
    pub fn new(contacts: Vec<Contact>, users: &[User]) -> Self {
        let mut entries: HashMap<String, Contact> = users
            .iter()
            .filter(|u| !u.disabled && (u.email.is_some() || u.phone.is_some()))
            .map(|u| {
                (
                    u.name.to_lowercase(),
                    Contact {
                        name: u.name.to_lowercase(),
                        email: u.email.clone(),
                        phone: u.phone.clone(),
                        events: Vec::new(),
                        channels: Vec::new(),
                    },
                )
            })
            .collect();
        for c in contacts {
            entries.insert(c.name.to_lowercase(), c);
        }
        Self { entries }
    }

    /// Turns `targets` (recipients as names) into deliveries (recipients as
    /// addresses) for `event`; `channels` gives each notifier's reach. A
    /// person channel whose recipients were all dropped (their entries do
    /// not want this event, or have no address) is dropped too, rather than
    /// sent to its configured recipients only.
    ///
    /// `also` names people routing put on no channel (a certificate's
    /// contacts when no contact channel is configured): they are reached only
    /// through the channels their entries ask for, from `now`.
    pub fn resolve(
        &self,
        event: &Event,
        targets: Vec<Target>,
        channels: &BTreeMap<String, Reach>,
        also: &[String],
        now: i64,
    ) -> Vec<Resolved> {
        let kind = kind_name(&event.kind);
        let reach = |c: &str| channels.get(c).copied().unwrap_or(Reach::None);
        let mut out: Vec<Resolved> = Vec::new();
        // Person channels: (target without recipients, had recipients).
        let mut person: BTreeMap<String, (Target, bool)> = BTreeMap::new();
        // Each person named, the channels routing put them on, and when.
        let mut people: Vec<(String, Vec<String>, i64)> = Vec::new();
        for t in targets {
            if reach(&t.channel) == Reach::None {
                out.push(Resolved {
                    target: t,
                    person: None,
                });
                continue;
            }
            for r in &t.recipients {
                match people
                    .iter_mut()
                    .find(|(p, _, _)| p.eq_ignore_ascii_case(r))
                {
                    Some((_, on, at)) => {
                        on.push(t.channel.clone());
                        *at = (*at).min(t.not_before);
                    }
                    None => people.push((r.clone(), vec![t.channel.clone()], t.not_before)),
                }
            }
            let had = !t.recipients.is_empty();
            person.insert(
                t.channel.clone(),
                (
                    Target {
                        recipients: Vec::new(),
                        ..t
                    },
                    had,
                ),
            );
        }
        for name in also {
            if !people.iter().any(|(p, _, _)| p.eq_ignore_ascii_case(name)) {
                people.push((name.clone(), Vec::new(), now));
            }
        }
        let mut phones: Vec<Resolved> = Vec::new();
        for (name, routed_on, at) in &people {
            let entry = self.entries.get(&name.to_lowercase());
            if entry.is_some_and(|e| !e.events.is_empty() && !e.events.iter().any(|k| k == kind)) {
                continue;
            }
            let wanted = match entry {
                Some(e) if !e.channels.is_empty() => &e.channels,
                _ => routed_on,
            };
            for channel in wanted {
                match reach(channel) {
                    Reach::Email => {
                        let address = entry
                            .and_then(|e| e.email.clone())
                            .or_else(|| name.contains('@').then(|| name.clone()));
                        let Some(address) = address else { continue };
                        let (t, _) = person.entry(channel.clone()).or_insert_with(|| {
                            (
                                Target {
                                    channel: channel.clone(),
                                    recipients: Vec::new(),
                                    not_before: *at,
                                },
                                true,
                            )
                        });
                        t.not_before = t.not_before.min(*at);
                        if !t
                            .recipients
                            .iter()
                            .any(|x| x.eq_ignore_ascii_case(&address))
                        {
                            t.recipients.push(address);
                        }
                    }
                    Reach::Phone => {
                        // Texted only when the entry asked for this channel
                        // by name; the channel's own number is its `to`.
                        let asked = entry.is_some_and(|e| e.channels.contains(channel));
                        let Some(phone) = entry.and_then(|e| e.phone.clone()).filter(|_| asked)
                        else {
                            continue;
                        };
                        let duplicate = phones.iter().any(|p| {
                            p.target.channel == *channel && p.person.as_deref() == Some(&phone)
                        });
                        if !duplicate {
                            phones.push(Resolved {
                                target: Target {
                                    channel: channel.clone(),
                                    recipients: vec![phone.clone()],
                                    not_before: *at,
                                },
                                person: Some(phone),
                            });
                        }
                    }
                    Reach::None => {}
                }
            }
        }
        for (_, (target, had)) in person {
            // An SMS channel routing picked texts its own number; an e-mail
            // channel goes to its configured recipients alone only when
            // routing named nobody on it.
            let keep =
                reach(&target.channel) == Reach::Phone || !had || !target.recipients.is_empty();
            if keep {
                out.push(Resolved {
                    target,
                    person: None,
                });
            }
        }
        out.extend(phones);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certkeeper_integrations::conformance::sample_event;

    fn target(channel: &str, recipients: &[&str]) -> Target {
        Target {
            channel: channel.into(),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            not_before: 100,
        }
    }

    fn reach() -> BTreeMap<String, Reach> {
        BTreeMap::from([
            ("mail".to_owned(), Reach::Email),
            ("text".to_owned(), Reach::Phone),
            ("slack".to_owned(), Reach::None),
        ])
    }

    fn contact(
        name: &str,
        email: Option<&str>,
        phone: Option<&str>,
        events: &[&str],
        channels: &[&str],
    ) -> Contact {
        Contact {
            name: name.into(),
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn summary(out: &[Resolved]) -> Vec<(String, Vec<String>, Option<String>)> {
        let mut s: Vec<_> = out
            .iter()
            .map(|r| {
                (
                    r.target.channel.clone(),
                    r.target.recipients.clone(),
                    r.person.clone(),
                )
            })
            .collect();
        s.sort();
        s
    }

    #[test]
    fn names_become_addresses_and_preferences_narrow_what_each_gets() {
        let directory = Directory::new(
            vec![
                // An alias that wants only expiry news, by e-mail and text.
                contact(
                    "ssladmin@example.com",
                    Some("pki-team@example.com"),
                    Some("+4915112345678"),
                    &["certificate_expiring"],
                    &["mail", "text"],
                ),
                // Someone who wants nothing about findings.
                contact("quiet@example.com", None, None, &["renewal_failed"], &[]),
            ],
            &[User {
                name: "sam".into(),
                role: certkeeper_model::admin::Role::Subscriber,
                units: vec![],
                password_hash: None,
                disabled: false,
                created: 0,
                email: Some("sam@example.com".into()),
                phone: Some("+4915199999999".into()),
            }],
        );
        let expiring = sample_event("certificate_expiring").unwrap();
        let targets = vec![
            target(
                "mail",
                &["ssladmin@example.com", "sam", "quiet@example.com", "nobody"],
            ),
            target("slack", &[]),
        ];
        let out = directory.resolve(&expiring, targets.clone(), &reach(), &[], 100);
        assert_eq!(
            summary(&out),
            [
                (
                    "mail".to_owned(),
                    vec![
                        "pki-team@example.com".to_owned(),
                        "sam@example.com".to_owned()
                    ],
                    None
                ),
                ("slack".to_owned(), vec![], None),
                // Its own delivery, to its own phone, on the channel it asked for.
                (
                    "text".to_owned(),
                    vec!["+4915112345678".to_owned()],
                    Some("+4915112345678".to_owned())
                ),
            ]
        );
        // A finding: the alias wants none, quiet neither; sam still does.
        let finding = sample_event("discovery_finding").unwrap();
        let out = directory.resolve(&finding, targets, &reach(), &[], 100);
        assert_eq!(
            summary(&out),
            [
                ("mail".to_owned(), vec!["sam@example.com".to_owned()], None),
                ("slack".to_owned(), vec![], None),
            ]
        );
    }

    #[test]
    fn a_mail_channel_nobody_is_left_on_sends_nothing() {
        let directory = Directory::new(
            vec![contact(
                "ops@example.com",
                None,
                None,
                &["renewal_failed"],
                &[],
            )],
            &[],
        );
        let expiring = sample_event("certificate_expiring").unwrap();
        let out = directory.resolve(
            &expiring,
            vec![
                target("mail", &["ops@example.com"]),
                target("text", &["ops@example.com"]),
            ],
            &reach(),
            &[],
            100,
        );
        // The text channel routing picked still texts its own number.
        assert_eq!(summary(&out), [("text".to_owned(), vec![], None)]);
        // A route to the mail channel naming nobody goes to its own `to`.
        let out = directory.resolve(&expiring, vec![target("mail", &[])], &reach(), &[], 100);
        assert_eq!(summary(&out), [("mail".to_owned(), vec![], None)]);
    }
}
