//! The shared backend: a PostgreSQL server that several processes on several machines use at
//! once. One connection per store, opened again when the server has closed it (a restart), so
//! that a long-running service or worker carries on after the database comes back.

use std::collections::HashMap;
use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use crate::location::redacted;
use crate::{
    account_network, now_s, postgres_migrations, review_from_columns, run_network_ids, Account,
    NetworkSummary, NewNetwork, NewReview, NewScan, Result, Review, ScanRow, StoreError,
    StoredNetwork, StoredScan, Subject,
};

/// How long a connection attempt may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to `url`, with the URL (password hidden) in the error.
pub(crate) fn connect(url: &str) -> Result<Client> {
    let open_error = |e| StoreError::Open {
        location: redacted(url),
        source: Box::new(StoreError::Postgres(e)),
    };
    let mut config: postgres::Config = url.parse().map_err(open_error)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("facade");
    }
    config.connect(NoTls).map_err(open_error)
}

/// A connection to one database whose schema is up to date, opened again when the server has
/// closed it (a restart), so that a long-running service or worker carries on after the
/// database comes back. The statements of the hot paths (the queue's, a scan's lookup and
/// write) are prepared once per connection: a plain query is parsed and planned by the server
/// and costs a second round trip every time.
pub(crate) struct Connection {
    url: String,
    client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Connection {
    pub(crate) fn open(url: &str) -> Result<Connection> {
        let mut client = connect(url)?;
        postgres_migrations::apply(&mut client, &redacted(url))?;
        Ok(Connection {
            url: url.to_owned(),
            client,
            prepared: HashMap::new(),
        })
    }

    /// The client, connected again if the server closed the connection.
    pub(crate) fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_closed() {
            self.client = connect(&self.url)?;
            // Prepared statements die with the connection that prepared them.
            self.prepared.clear();
        }
        Ok(&mut self.client)
    }

    /// The client and the statements of `sqls` prepared on it, in order.
    pub(crate) fn prepared(
        &mut self,
        sqls: &[&'static str],
    ) -> Result<(&mut Client, Vec<Statement>)> {
        self.client()?;
        let mut statements = Vec::with_capacity(sqls.len());
        for &sql in sqls {
            let statement = match self.prepared.get(sql) {
                Some(statement) => statement.clone(),
                None => {
                    let statement = self.client.prepare(sql)?;
                    self.prepared.insert(sql, statement.clone());
                    statement
                }
            };
            statements.push(statement);
        }
        Ok((&mut self.client, statements))
    }
}

pub(crate) struct PostgresStore {
    connection: Connection,
}

impl PostgresStore {
    pub(crate) fn open(url: &str) -> Result<PostgresStore> {
        Ok(PostgresStore {
            connection: Connection::open(url)?,
        })
    }

    fn client(&mut self) -> Result<&mut Client> {
        self.connection.client()
    }

    pub(crate) fn schema_version(&mut self) -> Result<u32> {
        postgres_migrations::version(self.client()?)
    }

    pub(crate) fn integrity_check(&mut self) -> Result<String> {
        self.client()?.query_one("SELECT 1", &[])?;
        Ok("ok".to_owned())
    }

    pub(crate) fn cached_scan(&mut self, sha256: &str, judge: &str) -> Result<Option<StoredScan>> {
        let (client, statements) = self.connection.prepared(&[CACHED_SCAN])?;
        let row = client.query_opt(&statements[0], &[&sha256, &judge])?;
        match row {
            Some(row) => Ok(Some(StoredScan {
                sha256: sha256.to_owned(),
                record: serde_json::from_str(row.get(0))?,
                scanned_at: row.get(1),
            })),
            None => Ok(None),
        }
    }

    pub(crate) fn put_scan(&mut self, scan: &NewScan) -> Result<()> {
        let (client, statements) = self.connection.prepared(&[PUT_SCAN])?;
        put_scan(client, &statements[0], scan)
    }

    pub(crate) fn thumbnail(&mut self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let row = self.client()?.query_opt(
            "SELECT thumbnail FROM scans WHERE sha256 = $1 AND thumbnail IS NOT NULL LIMIT 1",
            &[&sha256],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) fn put_run(
        &mut self,
        run: &str,
        networks: &[NewNetwork],
        accounts: &[Account],
    ) -> Result<Vec<String>> {
        let at = now_s();
        let mut tx = self.client()?.transaction()?;
        let (ids, by_label) = run_network_ids(networks);
        for (network, id) in networks.iter().zip(&ids) {
            tx.execute(
                "INSERT INTO networks (id, label, run, score, flagged, members, record, stored_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label, run = EXCLUDED.run,
                   score = EXCLUDED.score, flagged = EXCLUDED.flagged,
                   members = EXCLUDED.members, record = EXCLUDED.record,
                   stored_at = EXCLUDED.stored_at",
                &[
                    &id,
                    &network.label,
                    &run,
                    &network.score,
                    &network.flagged,
                    &(network.members.len() as i64),
                    &network.record.to_string(),
                    &at,
                ],
            )?;
        }
        for account in accounts {
            let network = account_network(account, &by_label);
            tx.execute(
                "INSERT INTO accounts (id, handle, network, image_sha256, ai_score, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET handle = EXCLUDED.handle,
                   network = EXCLUDED.network, image_sha256 = EXCLUDED.image_sha256,
                   ai_score = EXCLUDED.ai_score, updated_at = EXCLUDED.updated_at",
                &[
                    &account.id,
                    &account.handle,
                    &network,
                    &account.image_sha256,
                    &account.ai_score,
                    &at,
                ],
            )?;
        }
        tx.commit()?;
        Ok(ids)
    }

    pub(crate) fn networks(&mut self, all: bool) -> Result<Vec<NetworkSummary>> {
        let rows = self.client()?.query(
            "SELECT id, label, run, score, flagged, members, stored_at FROM networks
             WHERE flagged OR $1 ORDER BY score DESC, members DESC, id",
            &[&all],
        )?;
        Ok(rows.iter().map(network_summary).collect())
    }

    pub(crate) fn network(&mut self, id: &str) -> Result<Option<StoredNetwork>> {
        let row = self.client()?.query_opt(
            "SELECT id, label, run, score, flagged, members, stored_at, record FROM networks
             WHERE id = $1",
            &[&id],
        )?;
        match row {
            Some(row) => Ok(Some(StoredNetwork {
                summary: network_summary(&row),
                record: serde_json::from_str(row.get(7))?,
            })),
            None => Ok(None),
        }
    }

    pub(crate) fn accounts(&mut self, all: bool, min_ai_score: f64) -> Result<Vec<Account>> {
        let rows = self.client()?.query(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE $1 OR ai_score >= $2 OR network IN (SELECT id FROM networks WHERE flagged)
             ORDER BY ai_score DESC NULLS LAST, id",
            &[&all, &min_ai_score],
        )?;
        Ok(rows.iter().map(account_row).collect())
    }

    pub(crate) fn accounts_of_network(&mut self, id: &str) -> Result<Vec<Account>> {
        let rows = self.client()?.query(
            "SELECT id, handle, network, image_sha256, ai_score FROM accounts
             WHERE network = $1 ORDER BY ai_score DESC NULLS LAST, id",
            &[&id],
        )?;
        Ok(rows.iter().map(account_row).collect())
    }

    pub(crate) fn add_review(&mut self, review: &NewReview) -> Result<Review> {
        let created_at = now_s();
        let row = self.client()?.query_one(
            "INSERT INTO reviews (subject, decision, note, reviewer, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &review.subject.to_string(),
                &review.decision.as_str(),
                &review.note,
                &review.reviewer,
                &created_at,
            ],
        )?;
        Ok(review.recorded(row.get(0), created_at))
    }

    pub(crate) fn reviews(&mut self, subject: Option<&Subject>) -> Result<Vec<Review>> {
        let subject = subject.map(Subject::to_string);
        let rows = self.client()?.query(
            "SELECT id, subject, decision, note, reviewer, created_at FROM reviews
             WHERE $1::TEXT IS NULL OR subject = $1 ORDER BY id",
            &[&subject],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                review_from_columns(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
            })
            .collect())
    }
}

const CACHED_SCAN: &str = "SELECT record, scanned_at FROM scans WHERE sha256 = $1 AND judge = $2";

/// Keeps a scan (replacing an older one of the same bytes by the same judge).
pub(crate) const PUT_SCAN: &str =
    "INSERT INTO scans (sha256, judge, record, score, verdict, thumbnail, scanned_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (sha256, judge) DO UPDATE SET record = EXCLUDED.record,
       score = EXCLUDED.score, verdict = EXCLUDED.verdict, thumbnail = EXCLUDED.thumbnail,
       scanned_at = EXCLUDED.scanned_at";

/// Keeps a scan with the prepared [`PUT_SCAN`] on any connection or transaction (the queue's
/// workers write it in the same transaction that completes the job).
pub(crate) fn put_scan(
    client: &mut impl postgres::GenericClient,
    put: &Statement,
    scan: &NewScan,
) -> Result<()> {
    let row = ScanRow::of(scan);
    client.execute(
        put,
        &[
            &scan.sha256,
            &scan.judge,
            &row.record,
            &row.score,
            &row.verdict,
            &scan.thumbnail,
            &row.scanned_at,
        ],
    )?;
    Ok(())
}

fn account_row(r: &postgres::Row) -> Account {
    Account {
        id: r.get(0),
        handle: r.get(1),
        network: r.get(2),
        image_sha256: r.get(3),
        ai_score: r.get(4),
    }
}

fn network_summary(r: &postgres::Row) -> NetworkSummary {
    NetworkSummary {
        id: r.get(0),
        label: r.get(1),
        run: r.get(2),
        score: r.get(3),
        flagged: r.get(4),
        members: u32::try_from(r.get::<_, i64>(5)).unwrap_or(u32::MAX),
        stored_at: r.get(6),
    }
}
