<?php

/*
 * make bench-php: the PHP class against the cometbox extension, through a
 * real php-fpm pool, as a PHP application publishes.
 *
 *     php bench/fpm.php [--requests=N] [--rounds=N] [--workers=N] [--ext=path/to/cometbox.so] [--tls]
 *
 * Starts a redis-server, a cometbox node (COMETBOX_BIN, or go build) and,
 * for each side, a php-fpm pool of --workers static workers with Debian's
 * php.ini (opcache on, as production runs): one without the extension
 * (Transports::detect() picks curl) and one with it (detect() picks the
 * native transport). A FastCGI client drives --workers concurrent loops
 * of one request after another; each request runs
 * tests/Acceptance/scripts/fpm-publish.php, which builds a Client and
 * publishes one message. The sides take turns for --rounds rounds of
 * --requests requests each (a machine shared with other work drifts);
 * the table gives the median round of each side:
 *
 * - publishes per second, in all and per worker;
 * - p50/p99 of the publish in the page (new Client + send()) and of the
 *   whole FastCGI request as the driver saw it;
 * - CPU time per publish of the php-fpm workers and of the node (from
 *   /proc/PID/stat): unlike the rates, it hardly moves when other work
 *   shares the machine;
 * - TCP connections opened per 1,000 requests, as the transports count
 *   them (curl's CURLINFO_NUM_CONNECTS, the extension's
 *   connections_opened), and, for the extension, the connections to the
 *   node's port that ss lists at the end (its kept ones). ss cannot count
 *   curl's: Linux reuses loopback TIME-WAIT ports (tcp_tw_reuse=2).
 *
 * With --tls the pages publish to https://localhost through haproxy,
 * which terminates TLS (a P-256 certificate made here, trusted by the
 * pools through curl.cainfo and openssl.cafile) in front of the node.
 */

declare(strict_types=1);

use Cometbox\Tests\Acceptance\Support\FastCgi;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\PhpFpm;
use Cometbox\Tests\Acceptance\Support\Process;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;

require dirname(__DIR__) . '/tests/bootstrap.php';
@include_once 'PHPUnit/Autoload.php'; // Tools reports a missing tool through PHPUnit's Assert

$options = getopt('', ['requests:', 'rounds:', 'workers:', 'ext:', 'warmup:', 'tls']);
$tls = isset($options['tls']);
$requests = (int) ($options['requests'] ?? 1000);
$rounds = max(1, (int) ($options['rounds'] ?? 9));
$workers = max(1, (int) ($options['workers'] ?? 1));
$warmup = (int) ($options['warmup'] ?? 200);
$extension = $options['ext'] ?? dirname(__DIR__) . '/ext/modules/cometbox.so';
foreach ([
    [is_file($extension), "no extension at $extension: build it (php-client/ext/test.sh build) or pass --ext"],
    [PhpFpm::binary() !== null, 'php-fpm is not installed (apt-get install php-fpm)'],
    [is_string(shell_exec('command -v ss')), 'ss is not installed (apt-get install iproute2)'],
    [is_string(shell_exec('command -v redis-server')), 'redis-server is not installed (apt-get install redis-server)'],
    [function_exists('pcntl_fork') || $workers === 1, 'more than one worker needs the pcntl extension'],
    [!$tls || is_string(shell_exec('command -v haproxy')), '--tls needs haproxy (apt-get install haproxy)'],
] as [$ok, $why]) {
    if (!$ok) {
        fwrite(STDERR, "bench/fpm.php: $why\n");
        exit(2);
    }
}

$redis = RedisServer::start();
$node = Node::start('bench', $redis);
$port = (int) parse_url($node->url(), PHP_URL_PORT);
$url = $node->url();
$ini = [];
$proxy = null;
if ($tls) {
    [$proxy, $url, $pem] = tlsProxy($node->url());
    $ini = ['curl.cainfo' => $pem, 'openssl.cafile' => $pem];
    $port = (int) parse_url($url, PHP_URL_PORT);
}
$script = dirname(__DIR__) . '/tests/Acceptance/scripts/fpm-publish.php';
printf("php-fpm %s, %d worker%s, publishing to %s; %d rounds of %d requests per side, taking turns, after %d to warm up; a node on redis-server; load average %s\n\n",
    PHP_VERSION, $workers, $workers === 1 ? '' : 's', $tls ? 'https:// through haproxy' : 'http://', $rounds, $requests, $warmup,
    implode(' ', array_map(static fn ($l) => sprintf('%.2f', $l), sys_getloadavg() ?: [])));

$sides = ['class (curl)' => null, 'extension (native)' => $extension];
$pools = [];
$results = [];
foreach ($sides as $side => $ext) {
    $pools[$side] = PhpFpm::start($ext !== null ? 'benchext' : 'benchclass', $workers, $ext, $ini);
}
$query = static function (int $i) use ($url): string {
    return http_build_query(['node' => $url, 'secret' => Node::PUBLISH_SECRET, 'to' => 'bench-' . ($i % 100), 'data' => 'hello ' . $i]);
};
$pids = [];
foreach ($sides as $side => $ext) {
    $warm = run($pools[$side]->client(), $script, $warmup, $workers, $query);
    $pids[$side] = $warm['pids'];
    if (!$warm['opcache']) {
        fwrite(STDERR, "bench/fpm.php: opcache is off in the php-fpm pool; production runs it on\n");
    }
}
for ($round = 0; $round < $rounds; $round++) {
    foreach ($sides as $side => $ext) {
        $cpu = [cpu($pids[$side]), cpu([$node->pid()])];
        $r = run($pools[$side]->client(), $script, $requests, $workers, $query);
        $r['worker_cpu'] = (cpu($pids[$side]) - $cpu[0]) / $requests;
        $r['node_cpu'] = (cpu([$node->pid()]) - $cpu[1]) / $requests;
        $results[$side][] = $r;
    }
}
$kept = (int) trim((string) shell_exec(sprintf("ss -Htan state established '( dport = :%d )' | wc -l", $port)));
foreach ($pools as $pool) {
    $pool->stop();
}
if ($proxy !== null) {
    $proxy->stop();
}
$node->stop();
$redis->stop();

echo "| side | publishes/s | per worker | publish p50 / p99 | request p50 / p99 | worker CPU per publish | node CPU per publish | connections opened per 1,000 requests |\n";
echo "|---|---:|---:|---:|---:|---:|---:|---:|\n";
$rate = $median = [];
foreach ($results as $side => $runs) {
    $rate[$side] = array_column($runs, 'rate');
    $sorted = $runs;
    usort($sorted, static fn (array $a, array $b): int => $a['rate'] <=> $b['rate']);
    $r = $sorted[intdiv(count($sorted), 2)]; // the median round
    $median[$side] = $r;
    printf("| %s | %.0f | %.0f | %.0f / %.0f µs | %.0f / %.0f µs | %.0f µs | %.0f µs | %.1f |\n",
        $side, $r['rate'], $r['rate'] / $workers, $r['publish'][0], $r['publish'][1], $r['page'][0], $r['page'][1],
        middle(array_column($runs, 'worker_cpu')), middle(array_column($runs, 'node_cpu')), $r['opened'] * 1000 / $requests);
}
$ratios = array_map(static fn (float $c, float $e): float => $e / $c, $rate['class (curl)'], $rate['extension (native)']);
printf("\nextension / class: publishes per second %.2fx (median of the rounds' ratios; each: %s), worker CPU per publish %.2fx\n",
    middle($ratios), implode(' ', array_map(static fn (float $x): string => sprintf('%.2f', $x), $ratios)),
    middle(array_column($results['extension (native)'], 'worker_cpu')) / middle(array_column($results['class (curl)'], 'worker_cpu')));
printf("connections to the node at the end (ss, established): %d, the extension's kept one%s for %d worker%s\n",
    $kept, $kept === 1 ? '' : 's', $workers, $workers === 1 ? '' : 's');

/**
 * haproxy terminating TLS for $backend on a free port, with a certificate
 * for localhost made here.
 *
 * @return array{Process, string, string} the process, the https URL, the certificate's PEM file
 */
function tlsProxy(string $backend): array
{
    $dir = Tools::tempDir();
    $key = openssl_pkey_new(['private_key_type' => OPENSSL_KEYTYPE_EC, 'curve_name' => 'prime256v1']);
    $csr = openssl_csr_new(['commonName' => 'localhost'], $key, ['digest_alg' => 'sha256']);
    $cert = openssl_csr_sign($csr, null, $key, 1, ['digest_alg' => 'sha256']);
    openssl_x509_export($cert, $certPem);
    openssl_pkey_export($key, $keyPem);
    file_put_contents("$dir/proxy.pem", $certPem . $keyPem);
    file_put_contents("$dir/ca.pem", $certPem);
    $port = Tools::freePort();
    file_put_contents("$dir/haproxy.cfg", implode("\n", [
        'global',
        '  maxconn 2000',
        'defaults',
        '  mode http',
        '  timeout connect 2s',
        '  timeout client 60s',
        '  timeout server 60s',
        'frontend tls',
        "  bind 127.0.0.1:$port ssl crt $dir/proxy.pem",
        '  default_backend node',
        'backend node',
        '  server node ' . parse_url($backend, PHP_URL_HOST) . ':' . parse_url($backend, PHP_URL_PORT),
    ]) . "\n");
    $proxy = new Process('haproxy', [trim((string) shell_exec('command -v haproxy')), '-db', '-f', "$dir/haproxy.cfg"], Tools::env());
    $deadline = microtime(true) + 10;
    while (@fsockopen('127.0.0.1', $port) === false) {
        if (!$proxy->isRunning() || microtime(true) > $deadline) {
            throw new RuntimeException("haproxy did not start:\n" . $proxy->output());
        }
        usleep(20000);
    }

    return [$proxy, "https://localhost:$port", "$dir/ca.pem"];
}

/** @param float[] $values */
function middle(array $values): float
{
    sort($values);

    return $values[intdiv(count($values), 2)];
}

/**
 * CPU time (user + system) the processes have used so far, in µs.
 *
 * @param int[] $pids
 */
function cpu(array $pids): float
{
    $ticks = 0;
    foreach ($pids as $pid) {
        $stat = (string) @file_get_contents("/proc/$pid/stat");
        $fields = explode(' ', substr($stat, (int) strrpos($stat, ')') + 2));
        $ticks += (int) ($fields[11] ?? 0) + (int) ($fields[12] ?? 0); // utime, stime
    }

    return $ticks * 1e6 / 100; // USER_HZ is 100 on Linux
}

/**
 * $n requests over $loops concurrent loops (child processes, so that the
 * driver is never what waits).
 *
 * @return array{rate: float, publish: float[], page: float[], opened: int, pids: int[], opcache: bool}
 */
function run(FastCgi $fcgi, string $script, int $n, int $loops, callable $query): array
{
    $per = intdiv($n, $loops);
    $start = microtime(true);
    if ($loops === 1) {
        $all = [loop($fcgi, $script, 0, $per, $query)];
    } else {
        $children = [];
        for ($l = 0; $l < $loops; $l++) {
            $out = Tools::tempDir() . "/bench-loop-$l.json";
            $pid = pcntl_fork();
            if ($pid === 0) {
                file_put_contents($out, json_encode(loop($fcgi, $script, $l * $per, $per, $query)));
                pcntl_exec('/bin/true'); // end without the parent's shutdown functions (they stop the node)
                exit(1);
            }
            $children[$pid] = $out;
        }
        $all = [];
        foreach ($children as $pid => $out) {
            pcntl_waitpid($pid, $status);
            $all[] = json_decode((string) file_get_contents($out), true);
            unlink($out);
        }
    }
    $wall = microtime(true) - $start;
    $publish = $page = $pids = [];
    $opened = 0;
    $opcache = true;
    foreach ($all as $part) {
        if (!is_array($part)) {
            throw new RuntimeException('a bench loop failed');
        }
        array_push($publish, ...$part['publish']);
        array_push($page, ...$part['page']);
        $opened += $part['opened'];
        $pids += array_fill_keys($part['pids'], true);
        $opcache = $opcache && $part['opcache'];
    }

    return [
        'rate' => $n / $wall,
        'publish' => [percentile($publish, 50), percentile($publish, 99)],
        'page' => [percentile($page, 50), percentile($page, 99)],
        'opened' => $opened,
        'pids' => array_keys($pids),
        'opcache' => $opcache,
    ];
}

/** @return array{publish: float[], page: float[], opened: int, pids: int[], opcache: bool} */
function loop(FastCgi $fcgi, string $script, int $first, int $count, callable $query): array
{
    $publish = $page = $pids = [];
    $opened = 0;
    $opcache = true;
    for ($i = 0; $i < $count; $i++) {
        $t = hrtime(true);
        $answer = $fcgi->get($script, $query($first + $i));
        $page[] = (hrtime(true) - $t) / 1000;
        $doc = json_decode($answer['body'], true);
        if (!is_array($doc) || !isset($doc['id'])) {
            fwrite(STDERR, "bench/fpm.php: a bad answer: {$answer['body']} {$answer['stderr']}\n");
            exit(1);
        }
        $publish[] = $doc['publish_ns'] / 1000;
        $opened += (int) $doc['opened'];
        $pids[$doc['pid']] = true;
        $opcache = $opcache && $doc['opcache'];
    }

    return ['publish' => $publish, 'page' => $page, 'opened' => $opened, 'pids' => array_keys($pids), 'opcache' => $opcache];
}

/** @param float[] $values */
function percentile(array $values, int $p): float
{
    sort($values);

    return $values[(int) min(count($values) - 1, floor(count($values) * $p / 100))];
}
