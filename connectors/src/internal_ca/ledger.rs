//! The record of every certificate the CA issued, kept so that
//! `list_issued` can answer and a restart loses nothing.
//!
//! The state store can only load and save values by key, with no listing,
//! so each certificate is its own value (`issued/<serial>`, DER) and an
//! index of serials is kept in pages of [`PAGE_SIZE`]
//! (`issued-index/<n>`, a JSON array). Issuing writes the certificate and
//! the current page only: a few kilobytes whatever the CA's size, rather
//! than one blob that grows with every certificate. A small hint
//! (`issued-index`) holds the number of pages so opening reads one page, not
//! all of them; if a crash left a page the hint does not count, opening
//! finds it by probing the next page numbers.

use serde::{Deserialize, Serialize};

use super::CaError;
use crate::StateStore;

/// Serials per index page: about 9 KB of JSON a page.
pub(crate) const PAGE_SIZE: usize = 256;

const HINT_KEY: &str = "issued-index";

fn page_key(page: u64) -> String {
    format!("issued-index/{page}")
}

/// State-store key of the certificate with `serial` (lower-case hex).
pub(crate) fn certificate_key(serial: &str) -> String {
    format!("issued/{serial}")
}

#[derive(Serialize, Deserialize)]
struct Hint {
    pages: u64,
}

/// The index of issued serials: how many pages there are and the last one.
pub(crate) struct Ledger {
    /// Number of pages written, the last being `current`.
    pages: u64,
    /// Serials on the last page.
    current: Vec<String>,
}

impl Ledger {
    /// Loads the index from `store`.
    pub(crate) async fn open(store: &dyn StateStore) -> Result<Self, CaError> {
        let mut pages = match store.load(HINT_KEY).await.map_err(CaError::Store)? {
            Some(bytes) => {
                serde_json::from_slice::<Hint>(&bytes)
                    .map_err(|e| {
                        CaError::Config(format!("the stored issuance index is unreadable: {e}"))
                    })?
                    .pages
            }
            None => 0,
        };
        // Pages saved before a crash kept the hint from being updated.
        while store
            .load(&page_key(pages))
            .await
            .map_err(CaError::Store)?
            .is_some()
        {
            pages += 1;
        }
        let current = match pages.checked_sub(1) {
            Some(last) => load_page(store, last).await?,
            None => Vec::new(),
        };
        Ok(Self { pages, current })
    }

    /// Records a newly issued certificate. Nothing changes in memory unless
    /// every save succeeded, so a failed issuance leaves the index as it was.
    pub(crate) async fn record(
        &mut self,
        store: &dyn StateStore,
        serial: &str,
        certificate_der: &[u8],
    ) -> Result<(), CaError> {
        store
            .save(&certificate_key(serial), certificate_der)
            .await
            .map_err(CaError::Store)?;
        let new_page = self.pages == 0 || self.current.len() >= PAGE_SIZE;
        let (page, mut serials) = if new_page {
            (self.pages, Vec::with_capacity(PAGE_SIZE))
        } else {
            (self.pages - 1, self.current.clone())
        };
        serials.push(serial.to_owned());
        save_page(store, page, &serials).await?;
        if new_page {
            let hint = serde_json::to_vec(&Hint { pages: page + 1 })
                .map_err(|e| CaError::Config(e.to_string()))?;
            store.save(HINT_KEY, &hint).await.map_err(CaError::Store)?;
            self.pages = page + 1;
        }
        self.current = serials;
        Ok(())
    }

    /// A snapshot of where the index stands, for reading it without holding
    /// the lock that issuance needs.
    pub(crate) fn snapshot(&self) -> (u64, Vec<String>) {
        (self.pages, self.current.clone())
    }
}

/// Every issued serial, oldest first, from a [`Ledger::snapshot`].
#[cfg(test)]
pub(crate) async fn all_serials(
    store: &dyn StateStore,
    (pages, current): (u64, Vec<String>),
) -> Result<Vec<String>, CaError> {
    let mut serials = Vec::with_capacity(pages as usize * PAGE_SIZE);
    for page in 0..pages.saturating_sub(1) {
        serials.extend(load_page(store, page).await?);
    }
    serials.extend(current);
    Ok(serials)
}

/// Up to one page of issued serials from position `start` (0: the first
/// ever issued) in a [`Ledger::snapshot`], and whether more follow.
pub(crate) async fn serials_from(
    store: &dyn StateStore,
    (pages, current): (u64, Vec<String>),
    start: u64,
) -> Result<(Vec<String>, bool), CaError> {
    let page = start / PAGE_SIZE as u64;
    let offset = (start % PAGE_SIZE as u64) as usize;
    if page >= pages {
        return Ok((Vec::new(), false));
    }
    let serials = if page + 1 == pages {
        current
    } else {
        load_page(store, page).await?
    };
    let more = page + 1 < pages;
    Ok((serials.into_iter().skip(offset).collect(), more))
}

async fn load_page(store: &dyn StateStore, page: u64) -> Result<Vec<String>, CaError> {
    match store.load(&page_key(page)).await.map_err(CaError::Store)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| CaError::Config(format!("issuance index page {page} is unreadable: {e}"))),
        None => Err(CaError::Config(format!(
            "issuance index page {page} is missing"
        ))),
    }
}

async fn save_page(store: &dyn StateStore, page: u64, serials: &[String]) -> Result<(), CaError> {
    let bytes = serde_json::to_vec(serials).map_err(|e| CaError::Config(e.to_string()))?;
    store
        .save(&page_key(page), &bytes)
        .await
        .map_err(CaError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryState;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn pages_roll_over_and_survive_a_reopen() {
        block_on(async {
            let store = MemoryState::default();
            let mut ledger = Ledger::open(&store).await.unwrap();
            let count = PAGE_SIZE * 2 + 3;
            for i in 0..count {
                ledger
                    .record(&store, &format!("{i:04x}"), b"der")
                    .await
                    .unwrap();
            }
            // Only the last page is rewritten per issuance.
            let last = store.load(&page_key(2)).await.unwrap().unwrap();
            assert!(last.len() < 100, "last page holds 3 serials");
            let reopened = Ledger::open(&store).await.unwrap();
            let serials = all_serials(&store, reopened.snapshot()).await.unwrap();
            assert_eq!(serials.len(), count);
            assert_eq!(serials[0], "0000");
            assert_eq!(serials[count - 1], format!("{:04x}", count - 1));
        });
    }

    #[test]
    fn serials_are_read_a_page_at_a_time_from_a_position() {
        block_on(async {
            let store = MemoryState::default();
            let mut ledger = Ledger::open(&store).await.unwrap();
            for i in 0..PAGE_SIZE + 5 {
                ledger
                    .record(&store, &format!("{i:04x}"), b"der")
                    .await
                    .unwrap();
            }
            let (first, more) = serials_from(&store, ledger.snapshot(), 0).await.unwrap();
            assert_eq!((first.len(), more), (PAGE_SIZE, true));
            let (rest, more) = serials_from(&store, ledger.snapshot(), PAGE_SIZE as u64 + 2)
                .await
                .unwrap();
            assert_eq!(rest, vec!["0102", "0103", "0104"]);
            assert!(!more);
            let (none, more) = serials_from(&store, ledger.snapshot(), PAGE_SIZE as u64 + 5)
                .await
                .unwrap();
            assert!(none.is_empty() && !more);
        });
    }

    #[test]
    fn a_page_the_hint_missed_is_found() {
        block_on(async {
            let store = MemoryState::default();
            let mut ledger = Ledger::open(&store).await.unwrap();
            for i in 0..PAGE_SIZE + 1 {
                ledger
                    .record(&store, &format!("{i:04x}"), b"der")
                    .await
                    .unwrap();
            }
            // As if the process died after saving page 1 but before the hint.
            store.save(HINT_KEY, br#"{"pages":1}"#).await.unwrap();
            let reopened = Ledger::open(&store).await.unwrap();
            let serials = all_serials(&store, reopened.snapshot()).await.unwrap();
            assert_eq!(serials.len(), PAGE_SIZE + 1);
        });
    }
}
