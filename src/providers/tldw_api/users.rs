//! Users: resolving usernames to the user ids the other admin routes take.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::Method;

use super::{ApiError, TldwApi, routes};

/// The largest page the users listing serves (`limit ≤ 100`).
const USERS_PAGE_LIMIT: u64 = 100;
/// Up to this many names are resolved with one `search` each; more page through the listing,
/// which costs `users / 100` requests however many names are wanted.
const SEARCH_AT_MOST: usize = 8;

#[derive(serde::Deserialize)]
struct UsersPage {
    users: Vec<UserSummary>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    pages: Option<u64>,
    /// The page size the server actually used, which may be below the one asked for.
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

impl UsersPage {
    /// Number of pages, from `pages`, `pagination.pages` or `total`, whichever the server sent.
    fn page_count(&self) -> Option<u64> {
        let limit = self.limit.filter(|&l| l > 0).unwrap_or(USERS_PAGE_LIMIT);
        self.pages
            .or_else(|| self.pagination.as_ref().and_then(|p| p.pages))
            .or_else(|| self.total.map(|total| total.div_ceil(limit)))
    }
}

#[derive(serde::Deserialize)]
struct Pagination {
    #[serde(default)]
    pages: Option<u64>,
}

#[derive(serde::Deserialize)]
struct UserSummary {
    id: i64,
    username: String,
}

impl TldwApi {
    /// Resolves usernames to user ids in one pass. Up to a handful of names: one `search` per
    /// name (paging through the matches until the exact username shows up). More: every page of
    /// the users listing, 100 users a page, fetched concurrently after the first. Usernames are
    /// matched case-insensitively (tldw lower-cases them); the result is keyed by the names as
    /// given. Unknown names are absent from the result; the caller reports them.
    pub async fn resolve_users(
        &self,
        usernames: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, i64>, ApiError> {
        if usernames.is_empty() {
            return Ok(BTreeMap::new());
        }
        let ids = if usernames.len() <= SEARCH_AT_MOST {
            self.search_users(usernames).await?
        } else {
            let wanted: BTreeSet<String> = usernames.iter().map(|n| n.to_lowercase()).collect();
            self.list_users(&wanted).await?
        };
        Ok(usernames
            .iter()
            .filter_map(|name| ids.get(&name.to_lowercase()).map(|id| (name.clone(), *id)))
            .collect())
    }

    /// Every user the server has: username (as the server spells it) → user id, one page of
    /// the listing after the other. For `import`, which has no names to look up.
    pub async fn all_users(&self) -> Result<BTreeMap<String, i64>, ApiError> {
        let mut users = BTreeMap::new();
        let mut page = 1;
        loop {
            let current = self.users_page(page, None).await?;
            let last = is_last_page(&current, page);
            users.extend(
                current
                    .users
                    .into_iter()
                    .map(|user| (user.username, user.id)),
            );
            if last {
                return Ok(users);
            }
            page += 1;
        }
    }

    /// One search per name, concurrently; lower-cased username → id for those found.
    async fn search_users(
        &self,
        usernames: &BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ApiError> {
        let wanted: BTreeSet<String> = usernames.iter().map(|n| n.to_lowercase()).collect();
        let outcomes = self
            .bounded(
                wanted,
                |name| {
                    let api = self.clone();
                    async move { api.search_user(&name).await.map(|id| (name, id)) }
                },
                |outcome| outcome.is_err(),
            )
            .await;
        let mut ids = HashMap::new();
        for outcome in outcomes {
            if let (name, Some(id)) = outcome? {
                ids.insert(name, id);
            }
        }
        Ok(ids)
    }

    /// Pages through `?search=<name>` until the exact (lower-cased) username shows up.
    async fn search_user(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let mut page = 1;
        loop {
            let users = self.users_page(page, Some(name)).await?;
            if let Some(user) = users
                .users
                .iter()
                .find(|user| user.username.to_lowercase() == name)
            {
                return Ok(Some(user.id));
            }
            if is_last_page(&users, page) {
                return Ok(None);
            }
            page += 1;
        }
    }

    /// Reads every page of the listing once; lower-cased username → id for the wanted ones.
    async fn list_users(
        &self,
        wanted: &BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ApiError> {
        let mut ids = HashMap::new();
        let mut keep = |page: UsersPage| {
            for user in page.users {
                let name = user.username.to_lowercase();
                if wanted.contains(&name) {
                    ids.insert(name, user.id);
                }
            }
        };
        let first = self.users_page(1, None).await?;
        match first.page_count() {
            Some(pages) => {
                keep(first);
                let outcomes = self
                    .bounded(
                        2..=pages,
                        |page| {
                            let api = self.clone();
                            async move { api.users_page(page, None).await }
                        },
                        |outcome| outcome.is_err(),
                    )
                    .await;
                for outcome in outcomes {
                    keep(outcome?);
                }
            }
            // No page count in the response: read on until a short page.
            None => {
                let mut page = 1;
                let mut current = first;
                loop {
                    let last = is_last_page(&current, page);
                    keep(current);
                    if last {
                        break;
                    }
                    page += 1;
                    current = self.users_page(page, None).await?;
                }
            }
        }
        Ok(ids)
    }

    async fn users_page(&self, page: u64, search: Option<&str>) -> Result<UsersPage, ApiError> {
        let mut url = self.url(routes::USERS, &[]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("page", &page.to_string());
            query.append_pair("limit", &USERS_PAGE_LIMIT.to_string());
            if let Some(search) = search {
                query.append_pair("search", search);
            }
        }
        let reply = self.send(Method::GET, url, None).await?;
        self.expect_json(
            reply,
            "`{\"users\": [{\"id\": integer, \"username\": string}], …}`",
        )
    }
}

/// Whether `page` (1-based) is the last of the listing it came from.
fn is_last_page(page: &UsersPage, number: u64) -> bool {
    match page.page_count() {
        Some(pages) => number >= pages,
        None => {
            page.users.is_empty()
                || (page.users.len() as u64) < page.limit.unwrap_or(USERS_PAGE_LIMIT)
        }
    }
}
