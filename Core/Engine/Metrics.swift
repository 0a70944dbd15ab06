#if canImport(Glibc)
import Glibc
#endif

/// Evaluation metrics as pure functions, with the definitions scikit-learn uses (`sklearn.metrics`), so
/// numbers can be compared with a Python run on the same predictions.
///
/// Class labels are `Int`s. Where a function needs "the labels", it takes the sorted union of the labels
/// seen in `truth` and `predicted` (scikit-learn's `unique_labels`) unless `labels` is given.
/// Probabilities are row-major `[n × classes]` buffers.
public enum Metrics {
    // MARK: Classification from hard predictions

    /// Fraction of exact matches (`accuracy_score`). 0 for empty input.
    public static func accuracy(_ truth: [Int], _ predicted: [Int]) -> Double {
        precondition(truth.count == predicted.count, "accuracy: \(truth.count) labels vs \(predicted.count) predictions")
        guard !truth.isEmpty else { return 0 }
        var hits = 0
        for i in truth.indices where truth[i] == predicted[i] { hits += 1 }
        return Double(hits) / Double(truth.count)
    }

    /// `C[i][j]` = number of samples whose true label is `labels[i]` and predicted label is `labels[j]`
    /// (`confusion_matrix`). Samples whose labels are not in `labels` are ignored.
    public static func confusionMatrix(_ truth: [Int], _ predicted: [Int], labels: [Int]? = nil) -> [[Int]] {
        precondition(truth.count == predicted.count, "confusionMatrix: \(truth.count) labels vs \(predicted.count) predictions")
        let labels = labels ?? uniqueLabels(truth, predicted)
        var index: [Int: Int] = [:]
        for (i, l) in labels.enumerated() { index[l] = i }
        var c = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
        for i in truth.indices {
            if let t = index[truth[i]], let p = index[predicted[i]] { c[t][p] += 1 }
        }
        return c
    }

    /// Mean over classes of per-class recall (`balanced_accuracy_score`, `adjusted=False`). Classes that
    /// occur only among the predictions have no recall and are left out, as scikit-learn does (it warns).
    public static func balancedAccuracy(_ truth: [Int], _ predicted: [Int]) -> Double {
        let c = confusionMatrix(truth, predicted)
        var sum = 0.0, classes = 0
        for i in c.indices {
            let support = c[i].reduce(0, +)
            guard support > 0 else { continue }
            sum += Double(c[i][i]) / Double(support)
            classes += 1
        }
        return classes == 0 ? 0 : sum / Double(classes)
    }

    /// Per-class precision, recall, F1 and support (`precision_recall_fscore_support(average=None)`).
    public struct ClassReport: Sendable, Equatable {
        public var labels: [Int]
        /// tp / (tp + fp); 0 where nothing was predicted as the class (`zero_division` → 0).
        public var precision: [Double]
        /// tp / (tp + fn); 0 where the class has no true samples.
        public var recall: [Double]
        /// 2·tp / (2·tp + fp + fn); 0 where that denominator is 0.
        public var f1: [Double]
        /// Number of true samples of each class.
        public var support: [Int]
    }

    /// Counts come from all samples; `labels` only chooses which classes are reported (default: the sorted
    /// union of both arrays), as scikit-learn's `labels=` does.
    public static func classReport(_ truth: [Int], _ predicted: [Int], labels: [Int]? = nil) -> ClassReport {
        precondition(truth.count == predicted.count, "classReport: \(truth.count) labels vs \(predicted.count) predictions")
        let labels = labels ?? uniqueLabels(truth, predicted)
        var index: [Int: Int] = [:]
        for (i, l) in labels.enumerated() { index[l] = i }
        var tp = [Int](repeating: 0, count: labels.count), support = tp, predictedCount = tp
        for i in truth.indices {
            let t = index[truth[i]], p = index[predicted[i]]
            if let t { support[t] += 1 }
            if let p { predictedCount[p] += 1 }
            if let t, truth[i] == predicted[i] { tp[t] += 1 }
        }
        var report = ClassReport(labels: labels, precision: [], recall: [], f1: [], support: support)
        for k in labels.indices {
            let fp = predictedCount[k] - tp[k], fn = support[k] - tp[k]
            report.precision.append(predictedCount[k] == 0 ? 0 : Double(tp[k]) / Double(predictedCount[k]))
            report.recall.append(support[k] == 0 ? 0 : Double(tp[k]) / Double(support[k]))
            let denominator = 2 * tp[k] + fp + fn
            report.f1.append(denominator == 0 ? 0 : Double(2 * tp[k]) / Double(denominator))
        }
        return report
    }

    /// How per-class scores are combined (scikit-learn's `average=`).
    public enum Average: Sendable, Equatable {
        /// Unweighted mean over the labels.
        case macro
        /// Mean weighted by support.
        case weighted
        /// From the global tp/fp/fn counts (equals accuracy for single-label multiclass data).
        case micro
        /// The score of one class (scikit-learn's default `average="binary"` with `pos_label`).
        case binary(positive: Int)
    }

    public static func precision(_ truth: [Int], _ predicted: [Int], average: Average = .macro) -> Double {
        combine(classReport(truth, predicted, labels: labels(for: average, truth, predicted)), \.precision, average,
                truth, predicted)
    }

    public static func recall(_ truth: [Int], _ predicted: [Int], average: Average = .macro) -> Double {
        combine(classReport(truth, predicted, labels: labels(for: average, truth, predicted)), \.recall, average,
                truth, predicted)
    }

    public static func f1(_ truth: [Int], _ predicted: [Int], average: Average = .macro) -> Double {
        combine(classReport(truth, predicted, labels: labels(for: average, truth, predicted)), \.f1, average,
                truth, predicted)
    }

    // MARK: Classification from scores

    /// Area under the ROC curve for binary `truth` (1 = positive, anything else negative) and scores
    /// (`roc_auc_score`). Computed as the Mann–Whitney U statistic with average ranks for tied scores,
    /// which equals the trapezoidal area under scikit-learn's ROC curve (a tie is a diagonal segment).
    /// `nil` when only one class is present (scikit-learn raises).
    public static func rocAUC(_ truth: [Int], scores: [Double]) -> Double? {
        precondition(truth.count == scores.count, "rocAUC: \(truth.count) labels vs \(scores.count) scores")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var positives = 0
        var rankSumPositives = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1  // ranks are 1-based
            for k in i...j where truth[order[k]] == 1 {
                positives += 1
                rankSumPositives += averageRank
            }
            i = j + 1
        }
        let negatives = truth.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let u = rankSumPositives - Double(positives) * Double(positives + 1) / 2
        return u / (Double(positives) * Double(negatives))
    }

    /// One-vs-rest macro ROC AUC for `[n × classes]` probabilities (`roc_auc_score(multi_class="ovr",
    /// average="macro")`): the mean over classes of the binary AUC of "class k" vs "the rest" scored by column k.
    /// `nil` when some class has no positive or no negative sample.
    public static func rocAUCOneVsRest(_ truth: [Int], probabilities: [Double], classes: Int) -> Double? {
        precondition(probabilities.count == truth.count * classes, "rocAUCOneVsRest: need \(truth.count)×\(classes) probabilities")
        var total = 0.0
        for k in 0..<classes {
            let binary = truth.map { $0 == k ? 1 : 0 }
            let column = (0..<truth.count).map { probabilities[$0 * classes + k] }
            guard let auc = rocAUC(binary, scores: column) else { return nil }
            total += auc
        }
        return total / Double(classes)
    }

    /// Mean negative log-likelihood of the true class (`log_loss`), probabilities clipped to
    /// [ε, 1 − ε] with ε = `Double.ulpOfOne` (float64 machine epsilon, scikit-learn's choice for float64 input).
    /// Rows are not renormalised: pass probabilities.
    public static func logLoss(_ truth: [Int], probabilities: [Double], classes: Int) -> Double {
        precondition(probabilities.count == truth.count * classes, "logLoss: need \(truth.count)×\(classes) probabilities")
        guard !truth.isEmpty else { return 0 }
        let eps = Double.ulpOfOne
        var total = 0.0
        for i in truth.indices {
            precondition(truth[i] >= 0 && truth[i] < classes, "logLoss: label \(truth[i]) outside 0..<\(classes)")
            total -= log(min(max(probabilities[i * classes + truth[i]], eps), 1 - eps))
        }
        return total / Double(truth.count)
    }

    /// Binary log loss from P(class 1) per sample (`log_loss` with a 1-D `y_pred`).
    public static func logLoss(_ truth: [Int], positiveProbabilities p: [Double]) -> Double {
        precondition(truth.count == p.count, "logLoss: \(truth.count) labels vs \(p.count) probabilities")
        guard !truth.isEmpty else { return 0 }
        let eps = Double.ulpOfOne
        var total = 0.0
        for i in truth.indices {
            let q = min(max(p[i], eps), 1 - eps)
            total -= truth[i] == 1 ? log(q) : log(1 - q)
        }
        return total / Double(truth.count)
    }

    // MARK: Regression

    /// √(mean of squared errors) (`root_mean_squared_error`).
    public static func rootMeanSquaredError(_ truth: [Double], _ predicted: [Double]) -> Double {
        meanSquaredError(truth, predicted).squareRoot()
    }

    /// Mean of squared errors (`mean_squared_error`).
    public static func meanSquaredError(_ truth: [Double], _ predicted: [Double]) -> Double {
        precondition(truth.count == predicted.count, "meanSquaredError: \(truth.count) targets vs \(predicted.count) predictions")
        guard !truth.isEmpty else { return 0 }
        var s = 0.0
        for i in truth.indices {
            let d = truth[i] - predicted[i]
            s += d * d
        }
        return s / Double(truth.count)
    }

    /// Mean of absolute errors (`mean_absolute_error`).
    public static func meanAbsoluteError(_ truth: [Double], _ predicted: [Double]) -> Double {
        precondition(truth.count == predicted.count, "meanAbsoluteError: \(truth.count) targets vs \(predicted.count) predictions")
        guard !truth.isEmpty else { return 0 }
        var s = 0.0
        for i in truth.indices { s += abs(truth[i] - predicted[i]) }
        return s / Double(truth.count)
    }

    /// Coefficient of determination 1 − SS_res / SS_tot (`r2_score`). For constant `truth` (SS_tot = 0) it is
    /// 1 when the predictions are perfect and 0 otherwise (scikit-learn's `force_finite=True`).
    public static func r2(_ truth: [Double], _ predicted: [Double]) -> Double {
        precondition(truth.count == predicted.count, "r2: \(truth.count) targets vs \(predicted.count) predictions")
        guard !truth.isEmpty else { return 0 }
        let mean = truth.reduce(0, +) / Double(truth.count)
        var ssRes = 0.0, ssTot = 0.0
        for i in truth.indices {
            let r = truth[i] - predicted[i], t = truth[i] - mean
            ssRes += r * r
            ssTot += t * t
        }
        if ssTot == 0 { return ssRes == 0 ? 1 : 0 }
        return 1 - ssRes / ssTot
    }

    // MARK: Helpers

    /// Sorted union of the labels in both arrays (scikit-learn's `unique_labels`).
    public static func uniqueLabels(_ a: [Int], _ b: [Int]) -> [Int] {
        Array(Set(a).union(b)).sorted()
    }

    private static func labels(for average: Average, _ truth: [Int], _ predicted: [Int]) -> [Int] {
        if case .binary(let positive) = average { return [positive] }
        return uniqueLabels(truth, predicted)
    }

    private static func combine(_ r: ClassReport, _ score: KeyPath<ClassReport, [Double]>, _ average: Average,
                                _ truth: [Int], _ predicted: [Int]) -> Double {
        let values = r[keyPath: score]
        switch average {
        case .binary:
            return values.first ?? 0
        case .macro:
            return values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
        case .weighted:
            let total = r.support.reduce(0, +)
            guard total > 0 else { return 0 }
            var s = 0.0
            for k in values.indices { s += values[k] * Double(r.support[k]) }
            return s / Double(total)
        case .micro:
            // Single-label data: every sample is one tp or one (fp, fn) pair, so P = R = F1 = accuracy.
            return accuracy(truth, predicted)
        }
    }
}
