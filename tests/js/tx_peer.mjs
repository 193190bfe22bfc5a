// A js-libp2p peer on a p2pmed chain's transaction topic, written only from docs/wire.md.
//
//   node tx_peer.mjs --genesis GENESIS_JSON --peer-seed HEX32 [--node INDEX] [--timeout-s S]
//   node tx_peer.mjs --sign-probe SEED_HEX32 --chain-id ID --nonce N --label TEXT
//
// Dials validator INDEX (0 by default) of the genesis file over TCP + Noise + Yamux, with the
// libp2p Ed25519 key of the 32-byte seed --peer-seed (so its peer id is known in advance and can
// be admitted in the nodes' `[p2p] gossip_peers`), subscribes to /p2pmed/<chain_id>/tx/1 and
// writes JSON lines on stdout:
//
//   {"event": "ready", "peer_id": ..., "node": ..., "topic": ...}  linked, and the node is in our mesh
//   {"event": "tx", "id": HEX, "type": ..., "sender": HEX, "nonce": N}  each transaction received
//   {"event": "published", "id": HEX, "tx": HEX, "recipients": [...]}  after a "publish" command
//   {"event": "error", "message": ...}  then it exits with status 1
//
// The second form only signs a `load.probe` with the Ed25519 key of the 32-byte seed and prints
// {"event": "signed", "id": HEX, "tx": HEX}: Ed25519 signatures are deterministic, so the bytes
// must equal what p2pmed's own code makes of the same inputs (docs/wire.md's worked example).
//
// A transaction's id is recomputed here: SHA-256 of the transaction re-encoded by this script
// (RFC 8949 deterministic CBOR), not of bytes sliced out of the batch, so a node that agrees on
// the ids agrees on the encoding too.
//
// Commands, one a line on stdin: "publish" signs a `load.probe` transaction with a fresh Ed25519
// key (nonce 0) and publishes it in a batch of its own. End of stdin stops the peer (status 0).
// Every wait is bounded by --timeout-s (60 s by default): past it the peer reports an error.

import './node20.mjs'

import { createPrivateKey, createPublicKey, createHash, generateKeyPairSync, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { decode, encode, rfc8949EncodeOptions } from 'cborg'
import { createLibp2p } from 'libp2p'

const SIGNATURE_CONTEXT = 'p2pmed-signature-v1'
const TRANSACTION_DOMAIN = 'transaction'
const BATCH_BYTES_MAX = 512 << 10 // the nodes' default batch_bytes_max
// PKCS #8 DER of an Ed25519 private key, before its 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

const { values: options } = parseArgs({
  options: {
    genesis: { type: 'string' },
    'peer-seed': { type: 'string' },
    node: { type: 'string', default: '0' },
    'timeout-s': { type: 'string', default: '60' },
    'sign-probe': { type: 'string' },
    'chain-id': { type: 'string' },
    nonce: { type: 'string', default: '0' },
    label: { type: 'string', default: '' }
  }
})
const signing = options['sign-probe'] !== undefined && options['chain-id'] !== undefined
if (!signing && (options.genesis === undefined || options['peer-seed'] === undefined)) {
  fail('usage: node tx_peer.mjs --genesis GENESIS_JSON --peer-seed HEX32 [--node INDEX] [--timeout-s S]\n' +
    '       node tx_peer.mjs --sign-probe SEED_HEX32 --chain-id ID --nonce N --label TEXT')
}
const timeoutMs = 1000 * Number(options['timeout-s'])

function emit (event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

function fail (message) {
  emit({ event: 'error', message: String(message) })
  process.exit(1)
}

const hex = (bytes) => Buffer.from(bytes).toString('hex')

// -- the encoding (docs/wire.md, "Canonical CBOR") -----------------------------------------------

const canonical = (value) => encode(value, rfc8949EncodeOptions)

function decodeStrict (bytes) {
  const value = decode(bytes, { strict: true, rejectDuplicateMapKeys: true, allowIndefinite: false, allowUndefined: false, tags: [] })
  if (!Buffer.from(canonical(value)).equals(Buffer.from(bytes))) {
    throw new Error('not the canonical encoding')
  }
  return value
}

const transactionId = (tx) => createHash('sha256').update(canonical(tx)).digest()

function signTransaction (privateKey, publicKey, chainId, type, nonce, body) {
  const unsigned = { type, chain_id: chainId, sender: publicKey, nonce, body }
  const message = canonical([SIGNATURE_CONTEXT, TRANSACTION_DOMAIN, chainId, canonical(unsigned)])
  return { ...unsigned, signature: new Uint8Array(sign(null, message, privateKey)) }
}

function freshSigningKey () {
  const { privateKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x, 'base64url')
  return { privateKey, publicKey: new Uint8Array(raw) }
}

function signingKeyFromSeed (seed) {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const raw = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x, 'base64url')
  return { privateKey, publicKey: new Uint8Array(raw) }
}

// -- the peer -------------------------------------------------------------------------------------

function within (promise, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms ${what}`)), timeoutMs)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function until (condition, what, pollMs = 50) {
  await within((async () => {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, pollMs))
  })(), what)
}

async function main () {
  const genesis = JSON.parse(readFileSync(options.genesis, 'utf8'))
  const chainId = genesis.chain_id
  const topic = `/p2pmed/${chainId}/tx/1`
  const validator = genesis.validators[Number(options.node)]
  // A validator's libp2p key is its Ed25519 validator key, so its peer id follows from genesis.
  const nodeId = peerIdFromPublicKey(publicKeyFromRaw(Buffer.from(validator.public_key, 'hex')))

  const libp2p = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', Buffer.from(options['peer-seed'], 'hex')),
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // StrictSign is gossipsub's default; message ids are its default too (from + seqno).
      pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: false })
    }
  })
  const pubsub = libp2p.services.pubsub

  pubsub.addEventListener('message', (event) => {
    const message = event.detail
    if (message.topic !== topic) return
    let batch
    try {
      if (message.data.length > BATCH_BYTES_MAX) throw new Error(`${message.data.length} bytes`)
      batch = decodeStrict(message.data)
      if (Object.keys(batch).join() !== 'txs' || !Array.isArray(batch.txs)) throw new Error('not a TxBatch')
    } catch (error) {
      fail(`a batch that does not decode: ${error.message}`)
    }
    for (const tx of batch.txs) {
      emit({ event: 'tx', id: hex(transactionId(tx)), type: tx.type, sender: hex(tx.sender), nonce: tx.nonce })
    }
  })
  pubsub.subscribe(topic)

  await within(libp2p.dial(multiaddr(`${validator.address}/p2p/${nodeId}`)), `dialling ${validator.address}`)
  await until(() => pubsub.getMeshPeers(topic).includes(nodeId.toString()), 'for the node to join our mesh')
  emit({ event: 'ready', peer_id: libp2p.peerId.toString(), node: nodeId.toString(), topic })

  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    const command = line.trim()
    if (command === 'publish') {
      const { privateKey, publicKey } = freshSigningKey()
      const tx = signTransaction(privateKey, publicKey, chainId, 'load.probe', 0, { label: 'js-libp2p' })
      const result = await within(pubsub.publish(topic, canonical({ txs: [tx] })), 'publishing')
      emit({
        event: 'published',
        id: hex(transactionId(tx)),
        tx: hex(canonical(tx)),
        recipients: result.recipients.map((peer) => peer.toString())
      })
    } else if (command !== '') {
      fail(`unknown command ${JSON.stringify(command)}`)
    }
  }
  await within(libp2p.stop(), 'stopping')
  process.exit(0)
}

function signProbe () {
  const { privateKey, publicKey } = signingKeyFromSeed(Buffer.from(options['sign-probe'], 'hex'))
  const tx = signTransaction(privateKey, publicKey, options['chain-id'], 'load.probe', Number(options.nonce), { label: options.label })
  emit({ event: 'signed', id: hex(transactionId(tx)), tx: hex(canonical(tx)) })
}

if (signing) {
  signProbe()
} else {
  main().catch((error) => fail(error.stack ?? error))
}
