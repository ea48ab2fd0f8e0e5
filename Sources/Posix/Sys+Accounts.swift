import Glibc

/// What the accounts database says of a user beyond its ids.
extension Sys {
    package static var effectiveGroupID: UInt32 { getegid() }

    /// The groups account `name` belongs to (`getgrouplist`), `primary` among them.
    package static func groupIDs(ofAccount name: String, primary: UInt32) -> Set<UInt32> {
        var count: Int32 = 64
        var list = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary, &list, &count) < 0 {
            list = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, primary, &list, &count)
        }
        return Set(list.prefix(Int(max(count, 0)))).union([primary])
    }
}
