// js-libp2p 3 calls Promise.withResolvers (ES2024), which Node.js has from version 22 only.
// Imported first by tx_peer.mjs, so the peer also runs on Node.js 20 (what CI machines have).
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((resolve_, reject_) => { resolve = resolve_; reject = reject_ })
    return { promise, resolve, reject }
  }
}
