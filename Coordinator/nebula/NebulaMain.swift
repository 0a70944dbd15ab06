import NebulaCLI

@main
struct NebulaMain {
    static func main() async {
        await NebulaCLI.main()
    }
}
