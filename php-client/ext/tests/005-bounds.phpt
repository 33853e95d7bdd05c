--TEST--
cometbox: answers too large, malformed, cut short or late are typed NetworkExceptions, and their connections are not kept
--EXTENSIONS--
cometbox
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
$mib = 1024 * 1024;
$cases = [
    'a head over 16 KiB' => "HTTP/1.1 200 OK\r\nX-Big: " . str_repeat('x', 17000) . "\r\n\r\n",
    'a head of exactly 16 KiB' => ($h = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Big: ") . str_repeat('x', 16384 - strlen($h) - 4) . "\r\n\r\n",
    '101 header lines' => "HTTP/1.1 200 OK\r\n" . str_repeat("X-A: b\r\n", 101) . "\r\n",
    'a Content-Length over 1 MiB' => "HTTP/1.1 200 OK\r\nContent-Length: " . ($mib + 1) . "\r\n\r\n",
    'a body of exactly 1 MiB' => "HTTP/1.1 200 OK\r\nContent-Length: $mib\r\n\r\n" . str_repeat('y', $mib),
    'chunks over 1 MiB' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\n" . str_repeat('z', 0x80000) . "\r\n80001\r\n",
    'a body to the end over 1 MiB' => "HTTP/1.1 200 OK\r\n\r\n" . str_repeat('w', $mib + 1),
    'a chunk size line over 1 KiB' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" . str_repeat('e', 2000) . "\r\n",
    'trailers over 16 KiB' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " . str_repeat('t', 17000) . "\r\n\r\n",
    'not HTTP' => "SSH-2.0-OpenSSH_9.2\r\n\r\n",
    'HTTP/2' => "HTTP/2 200\r\n\r\n",
    'a status of two digits' => "HTTP/1.1 20 OK\r\n\r\n",
    'a NUL in the status line' => "HTTP/1.1 200 O\0K\r\n\r\n",
    'a bad Content-Length' => "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    'Content-Lengths that differ' => "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    'a negative Content-Length' => "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    'gzip transfer coding' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    'a bad chunk size' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    'a chunk longer than its size' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
    'a folded header' => "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
    'a header without a colon' => "HTTP/1.1 200 OK\r\nX-A\r\n\r\n",
    'a space before the colon' => "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    'a CR in a header value' => "HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n",
    '101 Switching Protocols' => "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    'nine interim answers' => str_repeat("HTTP/1.1 100 Continue\r\n\r\n", 9) . "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
];
$cut = [
    'a body cut short' => "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345",
    'a head cut short' => "HTTP/1.1 200 OK\r\nContent-Le",
    'chunks cut short' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    'chunks without their last one' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
];
$plan = [];
foreach ($cases as $answer) {
    $plan[] = ['answer' => $answer];
}
foreach ($cut as $answer) {
    $plan[] = ['answer' => $answer, 'then' => 'close'];
}
$plan[] = ['hang' => true];
$node = FakeNode::start($plan);
$u = $node->url . '/publish';
foreach (array_keys($cases + $cut) as $name) {
    echo $name, ': ';
    show(function () use ($u) {
        [$status, $headers, $body] = Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'k'], 'x', 5.0);
        return [$status, [], strlen($body) > 64 ? strlen($body) . ' bytes' : $body];
    });
    $open = Cometbox\Native\stats()['open'];
    if ($open !== 0) {
        echo "  kept\n";
    }
    Cometbox\Native\close_all();
}
$start = microtime(true);
echo 'no answer: ';
show(fn () => Cometbox\Native\request('POST', $u, ['Idempotency-Key' => 'k'], 'x', 0.3));
$took = microtime(true) - $start;
var_dump($took >= 0.3 && $took < 0.6, Cometbox\Native\stats()['open']);
$port = $node->url;
$node->stop();
echo 'nobody listening: ';
show(fn () => Cometbox\Native\request('POST', $u, [], 'x'));
?>
--EXPECT--
a head over 16 KiB: NetworkException TOO_LARGE: POST http://NODE/publish: the answer's head is over 16384 bytes (timeout 5s)
a head of exactly 16 KiB: 200 [] ""
  kept
101 header lines: NetworkException TOO_LARGE: POST http://NODE/publish: more than 100 header lines (timeout 5s)
a Content-Length over 1 MiB: NetworkException TOO_LARGE: POST http://NODE/publish: the answer's body is over 1048576 bytes (Content-Length 1048577) (timeout 5s)
a body of exactly 1 MiB: 200 [] "1048576 bytes"
  kept
chunks over 1 MiB: NetworkException TOO_LARGE: POST http://NODE/publish: the answer's body is over 1048576 bytes (timeout 5s)
a body to the end over 1 MiB: NetworkException TOO_LARGE: POST http://NODE/publish: the answer's body is over 1048576 bytes (timeout 5s)
a chunk size line over 1 KiB: NetworkException TOO_LARGE: POST http://NODE/publish: a chunk size line over 1024 bytes (timeout 5s)
trailers over 16 KiB: NetworkException TOO_LARGE: POST http://NODE/publish: the answer's trailers are over 16384 bytes (timeout 5s)
not HTTP: NetworkException PROTOCOL: POST http://NODE/publish: not an HTTP/1.x answer: "SSH-2.0-OpenSSH_9.2?" (timeout 5s)
HTTP/2: NetworkException PROTOCOL: POST http://NODE/publish: not an HTTP/1.x answer: "HTTP/2 200?" (timeout 5s)
a status of two digits: NetworkException PROTOCOL: POST http://NODE/publish: not an HTTP/1.x answer: "HTTP/1.1 20 OK?" (timeout 5s)
a NUL in the status line: NetworkException PROTOCOL: POST http://NODE/publish: a control character in the status line (timeout 5s)
a bad Content-Length: NetworkException PROTOCOL: POST http://NODE/publish: a bad Content-Length (timeout 5s)
Content-Lengths that differ: NetworkException PROTOCOL: POST http://NODE/publish: Content-Length values that differ (timeout 5s)
a negative Content-Length: NetworkException PROTOCOL: POST http://NODE/publish: a bad Content-Length (timeout 5s)
gzip transfer coding: NetworkException PROTOCOL: POST http://NODE/publish: an unsupported Transfer-Encoding (timeout 5s)
a bad chunk size: NetworkException PROTOCOL: POST http://NODE/publish: a bad chunk size line (timeout 5s)
a chunk longer than its size: NetworkException PROTOCOL: POST http://NODE/publish: a chunk is longer than its size (timeout 5s)
a folded header: NetworkException PROTOCOL: POST http://NODE/publish: a folded header line (timeout 5s)
a header without a colon: NetworkException PROTOCOL: POST http://NODE/publish: a header line without a name and a colon (timeout 5s)
a space before the colon: NetworkException PROTOCOL: POST http://NODE/publish: a bad character in a header name (timeout 5s)
a CR in a header value: NetworkException PROTOCOL: POST http://NODE/publish: a control character in a header value (timeout 5s)
101 Switching Protocols: NetworkException PROTOCOL: POST http://NODE/publish: 101 Switching Protocols, which was never asked for (timeout 5s)
nine interim answers: NetworkException PROTOCOL: POST http://NODE/publish: more than 8 interim (1xx) answers (timeout 5s)
a body cut short: NetworkException CLOSED: POST http://NODE/publish: connection closed after 5 of 10 bytes of the body (timeout 5s)
a head cut short: NetworkException CLOSED: POST http://NODE/publish: connection closed after 27 bytes of the head (timeout 5s)
chunks cut short: NetworkException CLOSED: POST http://NODE/publish: connection closed in the middle of a chunked body, after 2 bytes (timeout 5s)
chunks without their last one: NetworkException CLOSED: POST http://NODE/publish: connection closed in the middle of a chunked body, after 2 bytes (timeout 5s)
no answer: NetworkException TIMEOUT: POST http://NODE/publish: timed out after 0 bytes of the answer (timeout 0.3s)
bool(true)
int(0)
nobody listening: NetworkException CONNECT: POST http://NODE/publish: cannot connect to NODE: Connection refused (timeout 2s)
