//! Small-cell suppression for a two-way table of counts with margins.
//!
//! Primary suppression hides every count below `k` (zero cells are absent, not published as counts).
//! Complementary suppression then hides more cells until no hidden count can be computed from the published
//! ones: every line (row, column, the row of column totals, the column of row totals) that hides a cell hides at
//! least two, and a linear-algebra audit confirms that no hidden cell is determined by the published line sums;
//! any that is gets a further cell hidden in its row.

use std::collections::BTreeMap;

/// One count of the table. Margins use `"*"` as their row or column label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// Row label (e.g. the wave), or `"*"` for a column total.
    pub row: String,
    /// Column label (e.g. the country), or `"*"` for a row total.
    pub col: String,
    /// The count.
    pub count: u64,
}

/// Decides which cells to hide. Returns, per cell, `None` (published), `Some(true)` (below `k`) or
/// `Some(false)` (hidden to protect another), plus the numbers of primary and complementary suppressions.
pub fn suppress(cells: &[Cell], k: u64) -> (Vec<Option<bool>>, usize, usize) {
    let mut hidden: Vec<Option<bool>> = cells.iter().map(|c| (c.count > 0 && c.count < k).then_some(true)).collect();
    let lines = lines(cells);
    for _ in 0..cells.len() + 1 {
        let mut changed = false;
        for line in &lines {
            if line.iter().filter(|&&i| hidden[i].is_some()).count() == 1 {
                changed |= hide_smallest(cells, &mut hidden, line);
            }
        }
        if !changed {
            for i in determined(cells, &hidden, &lines) {
                let row_line = lines.iter().find(|l| l.contains(&i) && l.iter().all(|&j| cells[j].row == cells[i].row));
                let line = row_line.or_else(|| lines.iter().find(|l| l.contains(&i)));
                if let Some(line) = line {
                    changed |= hide_smallest(cells, &mut hidden, line);
                }
            }
        }
        if !changed {
            break;
        }
    }
    // Last resort: if some hidden cell is still determined (nothing was left to hide on its lines), hide every
    // cell rather than publish a recoverable one.
    if !determined(cells, &hidden, &lines).is_empty() {
        for h in hidden.iter_mut() {
            h.get_or_insert(false);
        }
    }
    let primary = hidden.iter().filter(|h| **h == Some(true)).count();
    let complementary = hidden.iter().filter(|h| **h == Some(false)).count();
    (hidden, primary, complementary)
}

fn hide_smallest(cells: &[Cell], hidden: &mut [Option<bool>], line: &[usize]) -> bool {
    // Prefer inner cells over totals, then the smallest count.
    let pick = line
        .iter()
        .copied()
        .filter(|&i| hidden[i].is_none() && cells[i].count > 0)
        .min_by_key(|&i| (cells[i].row == "*" || cells[i].col == "*", cells[i].count, i));
    match pick {
        Some(i) => {
            hidden[i] = Some(false);
            true
        }
        None => false,
    }
}

/// The additive lines of the table: each is a set of cells whose inner members sum to its total member.
/// The total is the last element.
fn lines(cells: &[Cell]) -> Vec<Vec<usize>> {
    let mut by_row: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut by_col: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in cells.iter().enumerate() {
        by_row.entry(&c.row).or_default().push(i);
        by_col.entry(&c.col).or_default().push(i);
    }
    let mut out = Vec::new();
    for group in by_row.values().chain(by_col.values()) {
        let (mut inner, total): (Vec<usize>, Vec<usize>) = group.iter().partition(|&&i| {
            let c = &cells[i];
            // Within a row line the total is the cell whose column is "*"; within a column line, whose row is "*".
            !(group.iter().all(|&j| cells[j].row == c.row) && c.col == "*"
                || group.iter().all(|&j| cells[j].col == c.col) && c.row == "*")
        });
        if total.len() == 1 && !inner.is_empty() {
            inner.push(total[0]);
            out.push(inner);
        }
    }
    out
}

/// Hidden cells whose value follows from the published counts and the line equations.
pub fn determined(cells: &[Cell], hidden: &[Option<bool>], lines: &[Vec<usize>]) -> Vec<usize> {
    let unknown: Vec<usize> = (0..cells.len()).filter(|&i| hidden[i].is_some()).collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    let pos: BTreeMap<usize, usize> = unknown.iter().enumerate().map(|(p, &i)| (i, p)).collect();
    // One equation per line: sum(inner) - total = 0, restricted to unknowns.
    let rows: Vec<Vec<f64>> = lines
        .iter()
        .map(|line| {
            let mut row = vec![0.0; unknown.len()];
            let (total, inner) = line.split_last().expect("lines are not empty");
            for &i in inner {
                if let Some(&p) = pos.get(&i) {
                    row[p] += 1.0;
                }
            }
            if let Some(&p) = pos.get(total) {
                row[p] -= 1.0;
            }
            row
        })
        .filter(|r| r.iter().any(|v| *v != 0.0))
        .collect();
    let base = rank(rows.clone());
    unknown
        .iter()
        .enumerate()
        .filter(|(p, _)| {
            let mut with = rows.clone();
            let mut e = vec![0.0; unknown.len()];
            e[*p] = 1.0;
            with.push(e);
            rank(with) == base
        })
        .map(|(_, &i)| i)
        .collect()
}

fn rank(mut m: Vec<Vec<f64>>) -> usize {
    let cols = m.first().map_or(0, Vec::len);
    let mut r = 0;
    for c in 0..cols {
        let Some(p) = (r..m.len()).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs())) else { break };
        if m[p][c].abs() < 1e-9 {
            continue;
        }
        m.swap(r, p);
        let pivot = m[r].clone();
        for (i, row) in m.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            if i != r && f != 0.0 {
                for (x, pv) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *x -= f * pv;
                }
            }
        }
        r += 1;
        if r == m.len() {
            break;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(inner: &[(&str, &str, u64)]) -> Vec<Cell> {
        let mut cells: Vec<Cell> =
            inner.iter().map(|(r, c, n)| Cell { row: (*r).into(), col: (*c).into(), count: *n }).collect();
        let mut rows: BTreeMap<String, u64> = BTreeMap::new();
        let mut cols: BTreeMap<String, u64> = BTreeMap::new();
        for (r, c, n) in inner {
            *rows.entry((*r).into()).or_default() += n;
            *cols.entry((*c).into()).or_default() += n;
        }
        let total: u64 = rows.values().sum();
        cells.extend(rows.into_iter().map(|(r, n)| Cell { row: r, col: "*".into(), count: n }));
        cells.extend(cols.into_iter().map(|(c, n)| Cell { row: "*".into(), col: c, count: n }));
        cells.push(Cell { row: "*".into(), col: "*".into(), count: total });
        cells
    }

    #[test]
    fn a_lone_small_cell_is_not_recoverable_by_subtraction() {
        // Row 2022: ARM 3 would be 50 - 20 - 27 without complementary suppression.
        let cells = table(&[
            ("2022", "ARM", 3),
            ("2022", "GEO", 20),
            ("2022", "TUR", 27),
            ("2023", "ARM", 15),
            ("2023", "GEO", 30),
            ("2023", "TUR", 12),
        ]);
        let (hidden, primary, complementary) = suppress(&cells, 10);
        assert_eq!(primary, 1);
        assert!(complementary >= 3, "row and column both need a second hidden cell");
        assert!(determined(&cells, &hidden, &lines(&cells)).is_empty());
        let arm22 = cells.iter().position(|c| c.row == "2022" && c.col == "ARM").unwrap();
        assert_eq!(hidden[arm22], Some(true));
    }

    #[test]
    fn nothing_small_means_nothing_hidden() {
        let cells = table(&[("2022", "ARM", 30), ("2022", "GEO", 20), ("2023", "ARM", 15)]);
        let (hidden, p, c) = suppress(&cells, 10);
        assert_eq!((p, c), (0, 0));
        assert!(hidden.iter().all(Option::is_none));
    }

    #[test]
    fn generated_tables_never_leak_a_hidden_cell() {
        // A small deterministic generator: 40 tables of 3 waves × 8 countries with many small counts.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..40 {
            let mut inner = Vec::new();
            for w in ["2022", "2023", "2024"] {
                for c in ["ARM", "GEO", "TUR", "KAZ", "SRB", "DEU", "ISR", "USA"] {
                    let n = next() % 40;
                    if n > 0 {
                        inner.push((w, c, n));
                    }
                }
            }
            let cells = table(&inner);
            let (hidden, _, _) = suppress(&cells, 10);
            for (c, h) in cells.iter().zip(&hidden) {
                if c.count > 0 && c.count < 10 {
                    assert!(h.is_some(), "small cell published: {c:?}");
                }
            }
            assert!(determined(&cells, &hidden, &lines(&cells)).is_empty(), "a hidden cell is recoverable");
        }
    }
}
