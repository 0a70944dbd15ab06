import NebulaEngine
import Testing

/// Expected values were computed with numpy from scikit-learn's definitions (confusion-matrix counts,
/// `zero_division=0`, trapezoidal area under `roc_curve`, eps-clipped log loss) and pasted as literals.
@Suite("Metrics")
struct MetricsTests {
    let truth = [0, 1, 2, 2, 1, 0, 1, 2, 0, 0, 1, 2, 2, 1]
    let predicted = [0, 2, 2, 2, 1, 0, 0, 1, 0, 1, 1, 2, 0, 1]

    func close(_ a: Double, _ b: Double, _ tolerance: Double = 1e-12) -> Bool { abs(a - b) <= tolerance }

    @Test func confusionMatrixAndAccuracy() {
        #expect(Metrics.confusionMatrix(truth, predicted) == [[3, 1, 0], [1, 3, 1], [1, 1, 3]])
        #expect(Metrics.confusionMatrix(truth, predicted, labels: [2, 0]) == [[3, 1], [0, 3]])
        #expect(close(Metrics.accuracy(truth, predicted), 0.6428571428571429))
        #expect(close(Metrics.balancedAccuracy(truth, predicted), 0.65))
    }

    @Test func precisionRecallF1() {
        let r = Metrics.classReport(truth, predicted)
        #expect(r.labels == [0, 1, 2])
        #expect(r.precision == [0.6, 0.6, 0.75])
        #expect(r.recall == [0.75, 0.6, 0.6])
        #expect(zip(r.f1, [0.6666666666666666, 0.6, 0.6666666666666666]).allSatisfy { close($0, $1) })
        #expect(r.support == [4, 5, 5])
        #expect(close(Metrics.precision(truth, predicted), 0.65))
        #expect(close(Metrics.recall(truth, predicted), 0.65))
        #expect(close(Metrics.f1(truth, predicted), 0.6444444444444444))
        #expect(close(Metrics.f1(truth, predicted, average: .weighted), 0.6428571428571429))
        #expect(close(Metrics.f1(truth, predicted, average: .micro), Metrics.accuracy(truth, predicted)))
        #expect(close(Metrics.precision(truth, predicted, average: .binary(positive: 2)), 0.75))
        #expect(close(Metrics.recall(truth, predicted, average: .binary(positive: 2)), 0.6))
    }

    @Test func zeroDivisionGivesZero() {
        // Label 3 is only predicted (precision 0/2, recall undefined → 0); label 2 is never predicted.
        let t = [0, 0, 1, 1, 2], p = [0, 3, 1, 1, 3]
        let r = Metrics.classReport(t, p)
        #expect(r.labels == [0, 1, 2, 3])
        #expect(r.precision == [1, 1, 0, 0])
        #expect(r.recall == [0.5, 1, 0, 0])
        #expect(close(Metrics.precision(t, p), 0.5))
        #expect(close(Metrics.recall(t, p), 0.375))
        #expect(close(Metrics.f1(t, p), 0.41666666666666663))
        // Balanced accuracy leaves out label 3 (no true samples), as scikit-learn does.
        #expect(close(Metrics.balancedAccuracy(t, p), 0.5))
    }

    @Test func rocAUCHandlesTies() throws {
        let y = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0]
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.4, 0.2, 0.65, 0.5]
        #expect(close(try #require(Metrics.rocAUC(y, scores: s)), 0.7999999999999999))
        #expect(Metrics.rocAUC([1, 1], scores: [0.2, 0.3]) == nil)
        #expect(Metrics.rocAUC([0, 1, 0, 1], scores: [0.5, 0.5, 0.5, 0.5]) == 0.5)
        #expect(Metrics.rocAUC([0, 0, 1, 1], scores: [0.1, 0.2, 0.3, 0.4]) == 1)
    }

    @Test func rocAUCOneVsRestMacro() throws {
        let p: [Double] = [0.7, 0.2, 0.1, 0.2, 0.5, 0.3, 0.1, 0.3, 0.6, 0.3, 0.3, 0.4, 0.5, 0.4, 0.1,
                           0.2, 0.2, 0.6, 0.6, 0.3, 0.1, 0.1, 0.8, 0.1, 0.4, 0.3, 0.3, 0.3, 0.3, 0.4]
        let y = [0, 1, 2, 2, 1, 2, 0, 1, 1, 0]
        #expect(close(try #require(Metrics.rocAUCOneVsRest(y, probabilities: p, classes: 3)), 0.9246031746031745))
    }

    @Test func logLossClipsProbabilities() {
        let p: [Double] = [0.7, 0.2, 0.1, 0, 1, 0, 0.1, 0.3, 0.6, 1, 0, 0]
        #expect(close(Metrics.logLoss([0, 1, 2, 2], probabilities: p, classes: 3), 9.22778848920547, 1e-10))
        #expect(close(Metrics.logLoss([1, 0, 1, 0, 0], positiveProbabilities: [0.9, 0.2, 0.6, 1, 0]), 7.376596615971036, 1e-10))
    }

    @Test func regressionMetrics() {
        let t = [3, -0.5, 2, 7, 4.5], p = [2.5, 0, 2, 8, 3]
        #expect(close(Metrics.rootMeanSquaredError(t, p), 0.8660254037844386))
        #expect(close(Metrics.meanAbsoluteError(t, p), 0.7))
        #expect(close(Metrics.r2(t, p), 0.8801916932907348))
        #expect(Metrics.r2([2, 2, 2], [2, 2, 2]) == 1)
        #expect(Metrics.r2([2, 2, 2], [2, 2, 3]) == 0)
    }
}
