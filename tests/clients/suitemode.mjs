// What the Node families share about the suite's mode (see run.sh): in proxy mode
// (CORRAL_MODE=proxy) the bootstrap is a corral proxy in front of librdkafka's mock cluster,
// which has no CreateTopics: topics are made through mock_upstream.py's control port.
import net from 'node:net'

export const PROXY = process.env.CORRAL_MODE === 'proxy'
export const EXPECT_BROKERS = Number(process.env.CORRAL_EXPECT_BROKERS || '1')
export const CORRAL_NODE_ID = 1000000000 // corral's own node in proxy mode (the group coordinator)

// The reason of a SKIP line: the check needs an API the upstream does not serve.
export const upstreamLacks = what => `the upstream, librdkafka's mock cluster, has no ${what}`

// Creates a topic on the proxy's upstream through the mock's control port; rejects unless
// the mock answers "ok".
export function mockCreate(topic, partitions) {
  const [host, port] = process.env.CORRAL_MOCK_CONTROL.split(/:(?=[^:]*$)/)
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port) })
    let buf = ''
    const timer = setTimeout(() => {
      s.destroy()
      reject(new Error(`mock control: create ${topic} ${partitions}: no reply in 10 s`))
    }, 10000)
    s.on('connect', () => s.write(`create ${topic} ${partitions}\n`))
    s.on('data', d => {
      buf += d
      const i = buf.indexOf('\n')
      if (i < 0) return
      clearTimeout(timer)
      s.end()
      const reply = buf.slice(0, i).trim()
      if (reply === 'ok') resolve()
      else reject(new Error(`mock control: create ${topic} ${partitions}: ${reply}`))
    })
    s.on('error', e => {
      clearTimeout(timer)
      reject(new Error(`mock control: create ${topic} ${partitions}: ${e.message}`))
    })
  })
}
