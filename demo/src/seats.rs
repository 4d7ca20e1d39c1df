//! The demo's event hall: 12 rows of 20 seats, and the server is the only judge of who holds
//! what. Holding a free seat wins or answers 409 with its holder; the loser, or anyone who asks
//! to watch a held seat, is told when it frees. Holds show live on the hall's presence channel; they
//! end when bought, released, after [`HOLD_FOR`], or when the holder has been out of the hall's
//! presence channel for [`ABSENCE_GRACE`] (page closed, connection gone), checked by a clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use crate::site::{lock, Demo, DemoError, Person, HALL_CHANNEL};

const ROWS: usize = 12;
const SEATS_PER_ROW: usize = 20;
const ROW_LETTERS: &[u8; ROWS] = b"ABCDEFGHIJKL";
/// How long a hold lasts unless bought.
const HOLD_FOR: Duration = Duration::from_secs(120);
/// The holder is told this long before their hold ends.
const WARN_BEFORE: Duration = Duration::from_secs(30);
/// Out of the hall this long (not a reconnect) releases a visitor's holds.
const ABSENCE_GRACE: Duration = Duration::from_secs(2);
const MAX_HOLDS_PER_VISITOR: usize = 8;
const CLOCK_TICK: Duration = Duration::from_millis(250);
/// The event carrying changed seats (`.seats` in Echo's terms).
const SEATS_EVENT: &str = "seats";

#[derive(Debug, Clone)]
enum Seat {
    Free,
    Held {
        by: Person,
        until: Instant,
        warned: bool,
    },
    Sold {
        by: Person,
    },
}

pub struct Hall {
    seats: Vec<Seat>,
    /// Per seat, who tried to hold it while taken.
    wanted: Vec<Vec<String>>,
    /// Holders not in the hall's channel, since when.
    absent_since: HashMap<String, Instant>,
}

/// A notification the hall wants sent: (user id, category, text).
type Notice = (String, &'static str, String);

/// Seat `index`'s label, `A1` to `L20`.
fn label(index: usize) -> String {
    format!(
        "{}{}",
        ROW_LETTERS[index / SEATS_PER_ROW] as char,
        index % SEATS_PER_ROW + 1
    )
}

/// The index of a label, or a 404.
fn index_of(label: &str) -> Result<usize, DemoError> {
    let not_found = || {
        DemoError::new(
            StatusCode::NOT_FOUND,
            format!("No seat {label}: rows A-L, seats 1-{SEATS_PER_ROW}"),
        )
    };
    let row = label.bytes().next().and_then(|b| {
        ROW_LETTERS
            .iter()
            .position(|r| *r == b.to_ascii_uppercase())
    });
    let number = label
        .get(1..)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=SEATS_PER_ROW).contains(n));
    match (row, number) {
        (Some(row), Some(number)) => Ok(row * SEATS_PER_ROW + number - 1),
        _ => Err(not_found()),
    }
}

impl Hall {
    pub fn new() -> Hall {
        Hall {
            seats: vec![Seat::Free; ROWS * SEATS_PER_ROW],
            wanted: vec![Vec::new(); ROWS * SEATS_PER_ROW],
            absent_since: HashMap::new(),
        }
    }

    /// A seat as pages show it: `{seat, state, by?, expiresInMs?}`.
    fn view(&self, index: usize, now: Instant) -> Value {
        let seat = label(index);
        match &self.seats[index] {
            Seat::Free => json!({ "seat": seat, "state": "free" }),
            Seat::Held { by, until, .. } => json!({
                "seat": seat, "state": "held", "by": by,
                "expiresInMs": until.saturating_duration_since(now).as_millis() as u64,
            }),
            Seat::Sold { by } => json!({ "seat": seat, "state": "sold", "by": by }),
        }
    }

    fn holds_of<'a>(&'a self, user_id: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.seats
            .iter()
            .enumerate()
            .filter(move |(_, s)| matches!(s, Seat::Held { by, .. } if by.id == user_id))
            .map(|(i, _)| i)
    }

    fn hold(&mut self, index: usize, who: &Person, now: Instant) -> Result<(), DemoError> {
        let taken = |by: &Person, what: &str| {
            DemoError::new(
                StatusCode::CONFLICT,
                format!("Seat {} is {what} {}", label(index), by.name),
            )
        };
        match &self.seats[index] {
            Seat::Held { by, .. } if by.id == who.id => return Ok(()),
            Seat::Held { by, .. } | Seat::Sold { by } => {
                let error = taken(
                    by,
                    if matches!(self.seats[index], Seat::Sold { .. }) {
                        "sold to"
                    } else {
                        "held by"
                    },
                );
                self.want(index, &who.id);
                return Err(error);
            }
            Seat::Free => {}
        }
        if self.holds_of(&who.id).count() >= MAX_HOLDS_PER_VISITOR {
            return Err(DemoError::new(
                StatusCode::CONFLICT,
                format!(
                    "At most {MAX_HOLDS_PER_VISITOR} seats at a time: buy or release some first"
                ),
            ));
        }
        self.seats[index] = Seat::Held {
            by: who.clone(),
            until: now + HOLD_FOR,
            warned: false,
        };
        self.wanted[index].retain(|id| *id != who.id);
        Ok(())
    }

    /// Remembers that `user_id` wants held seat `index`, to tell them when it frees.
    fn want(&mut self, index: usize, user_id: &str) {
        let held = matches!(self.seats[index], Seat::Held { .. });
        if held && !self.wanted[index].iter().any(|id| id == user_id) {
            self.wanted[index].push(user_id.to_string());
        }
    }

    /// Frees seat `index`; tells whoever wanted it (but `freed_by`) that it is free again.
    fn free(&mut self, index: usize, freed_by: &str, notices: &mut Vec<Notice>) {
        self.seats[index] = Seat::Free;
        for id in self.wanted[index].drain(..).filter(|id| id != freed_by) {
            notices.push((
                id,
                "seat",
                format!("Seat {} you wanted is free again", label(index)),
            ));
        }
    }

    /// One tick of the clock: ends expired holds and those of holders gone longer than the
    /// grace, and warns holders whose hold ends soon. Returns the changed seats.
    fn tick(
        &mut self,
        now: Instant,
        in_hall: impl Fn(&str) -> bool,
        notices: &mut Vec<Notice>,
    ) -> Vec<usize> {
        let holders: Vec<String> = self
            .seats
            .iter()
            .filter_map(|s| match s {
                Seat::Held { by, .. } => Some(by.id.clone()),
                _ => None,
            })
            .collect();
        self.absent_since
            .retain(|id, _| holders.contains(id) && !in_hall(id));
        for id in holders.iter().filter(|id| !in_hall(id)) {
            self.absent_since.entry(id.clone()).or_insert(now);
        }
        let mut changed = Vec::new();
        for index in 0..self.seats.len() {
            let Seat::Held { by, until, warned } = &mut self.seats[index] else {
                continue;
            };
            let gone = self
                .absent_since
                .get(&by.id)
                .is_some_and(|since| now.duration_since(*since) >= ABSENCE_GRACE);
            if gone || *until <= now {
                let (holder, expired) = (by.id.clone(), *until <= now);
                if expired {
                    notices.push((
                        holder.clone(),
                        "hold",
                        format!("Your hold on seat {} expired", label(index)),
                    ));
                }
                self.free(index, &holder, notices);
                changed.push(index);
            } else if !*warned && *until <= now + WARN_BEFORE {
                *warned = true;
                let secs = until.saturating_duration_since(now).as_secs();
                notices.push((
                    by.id.clone(),
                    "hold",
                    format!("Your hold on seat {} ends in {secs} s", label(index)),
                ));
            }
        }
        changed
    }
}

impl Demo {
    /// Tells the hall's viewers about changed seats and sends the notices.
    fn announce(&self, hall: &Hall, changed: &[usize], notices: Vec<Notice>, now: Instant) {
        if !changed.is_empty() {
            let seats: Vec<Value> = changed.iter().map(|&i| hall.view(i, now)).collect();
            self.publish(HALL_CHANNEL, SEATS_EVENT, &json!({ "seats": seats }), None);
        }
        for (user_id, category, text) in notices {
            self.notify(&user_id, category, &text);
        }
    }
}

/// Ticks the hall until shutdown.
pub async fn run_clock(demo: Arc<Demo>) {
    let mut tick = tokio::time::interval(CLOCK_TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = demo.shared.shutdown().cancelled() => return,
        }
        let now = Instant::now();
        let mut hall = lock(&demo.hall);
        let mut notices = Vec::new();
        let changed = hall.tick(
            now,
            |id| demo.app.channels.has_member(HALL_CHANNEL, id),
            &mut notices,
        );
        demo.announce(&hall, &changed, notices, now);
    }
}

/// `GET /demo/api/seats` -> `{rows, seatsPerRow, seats}`.
pub async fn list(State(demo): State<Arc<Demo>>) -> Json<Value> {
    let hall = lock(&demo.hall);
    let now = Instant::now();
    let seats: Vec<Value> = (0..hall.seats.len()).map(|i| hall.view(i, now)).collect();
    Json(
        json!({ "rows": ROWS, "seatsPerRow": SEATS_PER_ROW, "holdForMs": HOLD_FOR.as_millis() as u64, "seats": seats }),
    )
}

/// `POST /demo/api/seats/{seat}/hold` -> the seat, or 409 when someone else has it.
pub async fn hold(
    State(demo): State<Arc<Demo>>,
    Path(seat): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, DemoError> {
    let who = demo.visitor(&headers)?;
    let index = index_of(&seat)?;
    // Holds last only while their holder is in the hall: join it (subscribe) first.
    if !demo.app.channels.has_member(HALL_CHANNEL, &who.id) {
        return Err(DemoError::new(
            StatusCode::CONFLICT,
            "Join the hall first (subscribe to its channel)",
        ));
    }
    let now = Instant::now();
    let mut hall = lock(&demo.hall);
    hall.hold(index, &who, now)?;
    demo.announce(&hall, &[index], Vec::new(), now);
    Ok(Json(hall.view(index, now)))
}

/// `POST /demo/api/seats/{seat}/watch` -> the seat: a visitor who sees it held asks to be told
/// when it frees (holding it would only be refused).
pub async fn watch(
    State(demo): State<Arc<Demo>>,
    Path(seat): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, DemoError> {
    let who = demo.visitor(&headers)?;
    let index = index_of(&seat)?;
    let mut hall = lock(&demo.hall);
    hall.want(index, &who.id);
    Ok(Json(hall.view(index, Instant::now())))
}

/// `DELETE /demo/api/seats/{seat}/hold`: the holder gives a seat back.
pub async fn release(
    State(demo): State<Arc<Demo>>,
    Path(seat): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, DemoError> {
    let who = demo.visitor(&headers)?;
    let index = index_of(&seat)?;
    let now = Instant::now();
    let mut hall = lock(&demo.hall);
    if !matches!(&hall.seats[index], Seat::Held { by, .. } if by.id == who.id) {
        return Err(DemoError::new(
            StatusCode::CONFLICT,
            format!("You do not hold seat {}", label(index)),
        ));
    }
    let mut notices = Vec::new();
    hall.free(index, &who.id, &mut notices);
    demo.announce(&hall, &[index], notices, now);
    Ok(Json(hall.view(index, now)))
}

/// `POST /demo/api/seats/buy`: every seat the visitor holds becomes theirs -> `{seats}`.
pub async fn buy(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
) -> Result<Json<Value>, DemoError> {
    let who = demo.visitor(&headers)?;
    let now = Instant::now();
    let mut hall = lock(&demo.hall);
    let held: Vec<usize> = hall.holds_of(&who.id).collect();
    if held.is_empty() {
        return Err(DemoError::bad_request("Hold a seat first"));
    }
    for &index in &held {
        hall.seats[index] = Seat::Sold { by: who.clone() };
        hall.wanted[index].retain(|id| *id != who.id);
    }
    demo.announce(&hall, &held, Vec::new(), now);
    let seats: Vec<Value> = held.iter().map(|&i| hall.view(i, now)).collect();
    Ok(Json(json!({ "seats": seats })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> Person {
        Person {
            id: id.into(),
            name: id.to_uppercase(),
            color: "#000".into(),
        }
    }

    #[test]
    fn labels_round_trip_and_bad_ones_are_404() {
        assert_eq!(label(0), "A1");
        assert_eq!(label(ROWS * SEATS_PER_ROW - 1), "L20");
        assert_eq!(index_of("c7").unwrap(), 2 * SEATS_PER_ROW + 6);
        for bad in ["", "A", "A0", "A21", "M1", "Ä1", "A1x"] {
            assert_eq!(index_of(bad).unwrap_err().0, StatusCode::NOT_FOUND, "{bad}");
        }
    }

    #[test]
    fn one_holder_wins_and_the_loser_hears_when_it_frees() {
        let (ana, bob) = (person("ana"), person("bob"));
        let mut hall = Hall::new();
        let now = Instant::now();
        hall.hold(5, &ana, now).unwrap();
        let refused = hall.hold(5, &bob, now).unwrap_err();
        assert_eq!(refused.0, StatusCode::CONFLICT);
        assert!(refused.1.contains("held by ANA"));
        hall.hold(6, &ana, now).unwrap();
        hall.want(6, "bob");
        hall.want(6, "bob");
        hall.want(7, "bob"); // free: nothing to wait for
        let mut notices = Vec::new();
        hall.free(5, "ana", &mut notices);
        hall.free(6, "ana", &mut notices);
        hall.free(7, "ana", &mut notices);
        let told: Vec<&str> = notices.iter().map(|n| n.2.as_str()).collect();
        assert_eq!(
            told,
            [
                "Seat A6 you wanted is free again",
                "Seat A7 you wanted is free again"
            ]
        );
        hall.hold(5, &bob, now).unwrap();
    }

    #[test]
    fn holds_end_after_the_limit_or_when_the_holder_is_gone_past_the_grace() {
        let (ana, bob) = (person("ana"), person("bob"));
        let mut hall = Hall::new();
        let start = Instant::now();
        hall.hold(0, &ana, start).unwrap();
        hall.hold(1, &bob, start).unwrap();
        let mut notices = Vec::new();
        let only_ana = |id: &str| id == "ana";
        // Bob left: his hold survives a reconnect's worth of absence, not the grace.
        assert!(hall.tick(start, only_ana, &mut notices).is_empty());
        assert!(hall
            .tick(start + ABSENCE_GRACE / 2, only_ana, &mut notices)
            .is_empty());
        assert_eq!(
            hall.tick(start + ABSENCE_GRACE, only_ana, &mut notices),
            vec![1]
        );
        // Ana is warned once, then her hold expires.
        hall.tick(start + HOLD_FOR - WARN_BEFORE, only_ana, &mut notices);
        hall.tick(start + HOLD_FOR - WARN_BEFORE, only_ana, &mut notices);
        assert_eq!(
            notices.iter().filter(|n| n.2.contains("ends in")).count(),
            1
        );
        assert_eq!(hall.tick(start + HOLD_FOR, only_ana, &mut notices), vec![0]);
        assert!(notices
            .iter()
            .any(|n| n.0 == "ana" && n.2.contains("expired")));
    }

    #[test]
    fn buying_needs_holds_and_sold_seats_are_refused() {
        let (ana, bob) = (person("ana"), person("bob"));
        let mut hall = Hall::new();
        let now = Instant::now();
        hall.hold(3, &ana, now).unwrap();
        hall.seats[3] = Seat::Sold { by: ana.clone() };
        assert!(hall
            .hold(3, &bob, now)
            .unwrap_err()
            .1
            .contains("sold to ANA"));
        assert_eq!(hall.holds_of("ana").count(), 0);
    }
}
