import Foundation

/// The builder's report: one self-contained HTML page whose charts are SVG drawn here.
public enum BuilderReport {
    /// Section ids, in order (tests check each is present).
    public static func sections(for result: BuilderResult) -> [String] {
        ["dataset", "task", "leaderboard", "learning-curves"]
            + (result.classes != nil ? ["confusion-matrix"] + (result.rocCurve != nil ? ["roc-curve"] : [])
                                     : ["predicted-vs-actual", "residuals"])
            + ["feature-importance"]
    }

    public static func html(_ result: BuilderResult, title: String, runId: String) -> String {
        var body = "<h1>\(esc(title))</h1>\n<p class=\"meta\">run \(esc(runId)) · \(result.rows) rows · \(String(format: "%.1f", result.seconds)) s</p>\n"
        body += section("dataset", "Dataset") {
            "<p>\(result.rows) rows, \(result.columns.count) columns; \(result.trainRows) used for training and \(result.validationRows) held out for validation (\(String(format: "%.0f", result.holdoutFraction * 100)) %, AutoGluon's rule\(result.classes != nil ? ", stratified" : "")).</p>"
            + table(["column", "type", "missing", "distinct"], result.columns.map { [$0.name, $0.type, "\($0.missing)", $0.distinct.map(String.init) ?? ""] })
            + (result.skippedColumns.isEmpty ? "" : "<p>Left out: \(esc(result.skippedColumns.joined(separator: "; ")))</p>")
        }
        body += section("task", "Task") {
            "<p>Target <b>\(esc(result.target))</b>: <b>\(esc(result.task))</b> (\(esc(result.modality))) — \(esc(result.taskReason))\(result.taskOverridden ? " (set by the request)" : "").</p>"
            + (result.classes.map { "<p>Classes: \(esc($0.joined(separator: ", ")))</p>" } ?? "")
            + "<p>Ranked by <b>\(esc(result.evalMetric))</b> on the validation rows; \(result.features) encoded features.</p>"
        }
        body += section("leaderboard", "Leaderboard") {
            table(["model", "score_val", "eval_metric", "fit_time (s)", "pred_time_val (s)", "params"], result.leaderboard.map {
                [($0.best ? "★ " : "") + $0.model, String(format: "%.4f", $0.scoreVal), $0.evalMetric, String(format: "%.2f", $0.fitTime),
                 String(format: "%.3f", $0.predTimeVal), $0.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")]
            })
            + barChart(title: "score_val (\(result.evalMetric))", labels: result.leaderboard.map(\.model), values: result.leaderboard.map(\.scoreVal))
            + "<p>Best: <b>\(esc(result.bestModel))</b> — " + result.bestMetrics.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ") + "</p>"
        }
        body += section("learning-curves", "Learning curves") {
            result.curves.isEmpty ? "<p>No iterative candidate.</p>" : result.curves.sorted { $0.key < $1.key }.map { name, points in
                let validationLabel = name == "GBDT" ? "validation loss" : "validation \(result.evalMetric)"
                var series = [(validationLabel, points.compactMap { p in p.validation.map { (Double(p.step), $0) } })]
                let losses = points.compactMap { p in p.trainLoss.map { (Double(p.step), $0) } }
                if !losses.isEmpty { series.append(("training loss", losses)) }
                return lineChart(title: name, series: series, xLabel: name == "GBDT" ? "iteration" : "epoch")
            }.joined()
        }
        if let classes = result.classes {
            body += section("confusion-matrix", "Confusion matrix (\(result.bestModel), validation rows)") {
                heatmap(result.confusionMatrix ?? [], labels: classes)
            }
            if let roc = result.rocCurve {
                body += section("roc-curve", "ROC curve (\(result.bestModel))") {
                    lineChart(title: "ROC, AUC \(String(format: "%.4f", result.bestMetrics["roc_auc"] ?? .nan))",
                              series: [("ROC", roc.map { ($0[0], $0[1]) }), ("chance", [(0, 0), (1, 1)])],
                              xLabel: "false positive rate", yLabel: "true positive rate", fixedUnit: true)
                }
            }
        } else {
            let pairs = result.predictedVsActual ?? []
            body += section("predicted-vs-actual", "Predicted vs actual (\(result.bestModel), validation rows)") {
                scatter(pairs.map { ($0[1], $0[0]) }, xLabel: "actual", yLabel: "predicted", diagonal: true)
            }
            body += section("residuals", "Residuals") {
                scatter(pairs.map { ($0[0], $0[1] - $0[0]) }, xLabel: "predicted", yLabel: "actual − predicted", diagonal: false)
            }
        }
        body += section("feature-importance", "Permutation feature importance (\(result.bestModel))") {
            let top = result.permutationImportance.prefix(25)
            return "<p>How much the validation \(esc(result.evalMetric)) gets worse when one column's values are shuffled.</p>"
                + barChart(title: "importance", labels: top.map { $0[0] }, values: top.map { Double($0[1]) ?? 0 })
        }
        if !result.notes.isEmpty { body += "<section id=\"notes\"><h2>Notes</h2><ul>" + result.notes.map { "<li>\(esc($0))</li>" }.joined() + "</ul></section>\n" }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
            <style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}table{border-collapse:collapse;margin:.5em 0}
            td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}
            svg{display:block;margin:.5em 0}.meta{color:#666}section{margin-bottom:2em}</style></head>
            <body>
            \(body)</body></html>
            """
    }

    // MARK: Pieces

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func section(_ id: String, _ title: String, _ content: () -> String) -> String {
        "<section id=\"\(id)\"><h2>\(esc(title))</h2>\n\(content())\n</section>\n"
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        "<table><tr>" + header.map { "<th>\(esc($0))</th>" }.joined() + "</tr>"
            + rows.map { "<tr>" + $0.map { "<td>\(esc($0))</td>" }.joined() + "</tr>" }.joined() + "</table>"
    }

    static func fmt(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        return String(format: "%.2f", v)
    }

    static func label(_ v: Double) -> String {
        let a = abs(v)
        return a != 0 && (a < 0.01 || a >= 10000) ? String(format: "%.2e", v) : String(format: a < 10 ? "%.3g" : "%.0f", v)
    }

    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

    static func barChart(title: String, labels: [String], values: [Double]) -> String {
        let rowH = 22.0, left = 190.0, width = 640.0, plotW = width - left - 70
        let h = Double(labels.count) * rowH + 40
        let finite = values.filter(\.isFinite)
        let lo = min(0, finite.min() ?? 0), hi = max(finite.max() ?? 1, lo + 1e-12)
        func x(_ v: Double) -> Double { left + (v - lo) / (hi - lo) * plotW }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(width))\" height=\"\(fmt(h))\" viewBox=\"0 0 \(fmt(width)) \(fmt(h))\" role=\"img\"><title>\(esc(title))</title>"
        svg += "<text x=\"\(fmt(left))\" y=\"14\" font-size=\"12\">\(esc(title))</text>"
        for (i, (name, v)) in zip(labels, values).enumerated() {
            let y = 24 + Double(i) * rowH
            let value = v.isFinite ? v : 0
            let x0 = x(min(0, value)), x1 = x(max(0, value))
            svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y + 14))\" font-size=\"11\" text-anchor=\"end\">\(esc(String(name.prefix(30))))</text>"
            svg += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y + 3))\" width=\"\(fmt(max(1, x1 - x0)))\" height=\"\(fmt(rowH - 6))\" fill=\"\(palette[0])\"/>"
            svg += "<text x=\"\(fmt(x1 + 4))\" y=\"\(fmt(y + 14))\" font-size=\"11\">\(esc(label(v)))</text>"
        }
        return svg + "</svg>"
    }

    static func axes(_ w: Double, _ h: Double, _ m: Double, xr: (Double, Double), yr: (Double, Double), xLabel: String, yLabel: String) -> String {
        var s = "<line x1=\"\(fmt(m))\" y1=\"\(fmt(h - m))\" x2=\"\(fmt(w - 10))\" y2=\"\(fmt(h - m))\" stroke=\"#444\"/>"
        s += "<line x1=\"\(fmt(m))\" y1=\"10\" x2=\"\(fmt(m))\" y2=\"\(fmt(h - m))\" stroke=\"#444\"/>"
        s += "<text x=\"\(fmt(w / 2))\" y=\"\(fmt(h - 8))\" font-size=\"11\" text-anchor=\"middle\">\(esc(xLabel))</text>"
        s += "<text x=\"12\" y=\"\(fmt(h / 2))\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 \(fmt(h / 2)))\">\(esc(yLabel))</text>"
        s += "<text x=\"\(fmt(m))\" y=\"\(fmt(h - m + 14))\" font-size=\"10\">\(esc(label(xr.0)))</text>"
        s += "<text x=\"\(fmt(w - 10))\" y=\"\(fmt(h - m + 14))\" font-size=\"10\" text-anchor=\"end\">\(esc(label(xr.1)))</text>"
        s += "<text x=\"\(fmt(m - 4))\" y=\"\(fmt(h - m))\" font-size=\"10\" text-anchor=\"end\">\(esc(label(yr.0)))</text>"
        s += "<text x=\"\(fmt(m - 4))\" y=\"18\" font-size=\"10\" text-anchor=\"end\">\(esc(label(yr.1)))</text>"
        return s
    }

    static func range(_ values: [Double]) -> (Double, Double) {
        let f = values.filter(\.isFinite)
        guard let lo = f.min(), let hi = f.max() else { return (0, 1) }
        return hi > lo ? (lo, hi) : (lo - 0.5, hi + 0.5)
    }

    static func lineChart(title: String, series: [(String, [(Double, Double)])], xLabel: String, yLabel: String = "",
                          fixedUnit: Bool = false) -> String {
        let w = 520.0, h = 300.0, m = 50.0
        let xr = fixedUnit ? (0, 1) : range(series.flatMap { $0.1.map(\.0) })
        let yr = fixedUnit ? (0, 1) : range(series.flatMap { $0.1.map(\.1) })
        func px(_ v: Double) -> Double { m + (v - xr.0) / (xr.1 - xr.0) * (w - m - 10) }
        func py(_ v: Double) -> Double { (h - m) - (v - yr.0) / (yr.1 - yr.0) * (h - m - 10) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" viewBox=\"0 0 \(fmt(w)) \(fmt(h))\" role=\"img\"><title>\(esc(title))</title>"
        svg += "<text x=\"\(fmt(m))\" y=\"10\" font-size=\"12\">\(esc(title))</text>"
        svg += axes(w, h, m, xr: xr, yr: yr, xLabel: xLabel, yLabel: yLabel)
        for (i, (name, points)) in series.enumerated() where !points.isEmpty {
            let color = palette[i % palette.count]
            let path = points.filter { $0.0.isFinite && $0.1.isFinite }.map { "\(fmt(px($0.0))),\(fmt(py($0.1)))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(path)\"/>"
            svg += "<text x=\"\(fmt(w - 12))\" y=\"\(fmt(24 + Double(i) * 14))\" font-size=\"11\" text-anchor=\"end\" fill=\"\(color)\">\(esc(name))</text>"
        }
        return svg + "</svg>"
    }

    static func scatter(_ points: [(Double, Double)], xLabel: String, yLabel: String, diagonal: Bool) -> String {
        let w = 420.0, h = 360.0, m = 50.0
        var xr = range(points.map(\.0)), yr = range(points.map(\.1))
        if diagonal { let r = range(points.flatMap { [$0.0, $0.1] }); xr = r; yr = r }
        func px(_ v: Double) -> Double { m + (v - xr.0) / (xr.1 - xr.0) * (w - m - 10) }
        func py(_ v: Double) -> Double { (h - m) - (v - yr.0) / (yr.1 - yr.0) * (h - m - 10) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" viewBox=\"0 0 \(fmt(w)) \(fmt(h))\" role=\"img\"><title>\(esc(yLabel)) vs \(esc(xLabel))</title>"
        svg += axes(w, h, m, xr: xr, yr: yr, xLabel: xLabel, yLabel: yLabel)
        if diagonal {
            svg += "<line x1=\"\(fmt(px(xr.0)))\" y1=\"\(fmt(py(xr.0)))\" x2=\"\(fmt(px(xr.1)))\" y2=\"\(fmt(py(xr.1)))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
        } else if yr.0 < 0, yr.1 > 0 {
            svg += "<line x1=\"\(fmt(m))\" y1=\"\(fmt(py(0)))\" x2=\"\(fmt(w - 10))\" y2=\"\(fmt(py(0)))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>"
        }
        for (x, y) in points where x.isFinite && y.isFinite {
            svg += "<circle cx=\"\(fmt(px(x)))\" cy=\"\(fmt(py(y)))\" r=\"2.5\" fill=\"\(palette[0])\" fill-opacity=\"0.6\"/>"
        }
        return svg + "</svg>"
    }

    static func heatmap(_ matrix: [[Int]], labels: [String]) -> String {
        let k = labels.count
        let cell = max(18.0, min(48.0, 480.0 / Double(max(1, k)))), left = 110.0, top = 40.0
        let w = left + cell * Double(k) + 20, h = top + cell * Double(k) + 40
        let maxValue = Double(matrix.flatMap { $0 }.max() ?? 1)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(fmt(w))\" height=\"\(fmt(h))\" viewBox=\"0 0 \(fmt(w)) \(fmt(h))\" role=\"img\"><title>confusion matrix</title>"
        svg += "<text x=\"\(fmt(left))\" y=\"14\" font-size=\"11\">predicted →</text><text x=\"4\" y=\"\(fmt(top - 6))\" font-size=\"11\">actual ↓</text>"
        for (i, name) in labels.enumerated() {
            svg += "<text x=\"\(fmt(left + cell * (Double(i) + 0.5)))\" y=\"\(fmt(top - 6))\" font-size=\"10\" text-anchor=\"middle\">\(esc(String(name.prefix(8))))</text>"
            svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(top + cell * (Double(i) + 0.6)))\" font-size=\"10\" text-anchor=\"end\">\(esc(String(name.prefix(14))))</text>"
        }
        for (r, row) in matrix.enumerated() {
            for (c, v) in row.enumerated() {
                let shade = maxValue > 0 ? Double(v) / maxValue : 0
                let x = left + cell * Double(c), y = top + cell * Double(r)
                svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(cell))\" height=\"\(fmt(cell))\" fill=\"rgb(31,119,180)\" fill-opacity=\"\(String(format: "%.3f", 0.05 + 0.95 * shade))\" stroke=\"#fff\"/>"
                svg += "<text x=\"\(fmt(x + cell / 2))\" y=\"\(fmt(y + cell / 2 + 4))\" font-size=\"10\" text-anchor=\"middle\" fill=\"\(shade > 0.5 ? "#fff" : "#222")\">\(v)</text>"
            }
        }
        return svg + "</svg>"
    }
}
