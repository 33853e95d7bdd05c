--TEST--
cometbox: a fake node answering truncated, oversized and malformed HTTP: every outcome is an answer or a NetworkException
--EXTENSIONS--
cometbox
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
mt_srand(18);
$seeds = [
    FakeNode::ok('<?xml version="1.0"?><queued><message to="a" id="1"/></queued>'),
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nT: 1\r\n\r\n",
    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\nno",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "HTTP/1.0 200 OK\r\n\r\nto the end",
    "HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
];
$mutate = static function (string $s): string {
    switch (mt_rand(0, 7)) {
        case 0: return substr($s, 0, mt_rand(0, strlen($s)));                                  // truncated
        case 1: $i = mt_rand(0, strlen($s) - 1); $s[$i] = chr(mt_rand(0, 255)); return $s;     // a byte flipped
        case 2: $i = mt_rand(0, strlen($s)); return substr($s, 0, $i) . random_bytes(mt_rand(1, 8)) . substr($s, $i);
        case 3: return str_replace(['Content-Length: ', "\r\n4\r\n"], ['Content-Length: 9' . mt_rand(0, 99999999), "\r\nfffffff\r\n"], $s);
        case 4: return $s . $s;                                                                 // two answers at once
        case 5: return random_bytes(mt_rand(0, 64));                                            // garbage
        case 6: return preg_replace('/\r\n\r\n/', "\r\nX: " . str_repeat('x', mt_rand(0, 40000)) . "\r\n\r\n", $s, 1);
        default: return $s;                                                                     // as is
    }
};
$plan = [];
for ($i = 0; $i < 300; $i++) {
    $answer = $mutate($mutate($seeds[mt_rand(0, count($seeds) - 1)]));
    $plan[] = ['answer' => $answer, 'then' => 'close', 'pieces' => mt_rand(1, 3)];
}
$node = FakeNode::start($plan);
$answers = $errors = 0;
$kinds = [];
for ($i = 0; $i < 300; $i++) {
    try {
        [$status, $headers, $body] = Cometbox\Native\request('POST', $node->url . '/publish', ['Idempotency-Key' => "k$i"], 'x', 1.0);
        if (!is_int($status) || $status < 100 || $status > 999 || !is_string($body) || strlen($body) > 1048576) {
            echo "bad answer\n";
        }
        foreach ($headers as $name => $value) {
            if (!is_string($value) || strtolower((string) $name) !== (string) $name) {
                echo "bad header\n";
            }
        }
        $answers++;
    } catch (Cometbox\Native\NetworkException $e) {
        $kinds[$e->getCode()] = true;
        $errors++;
    }
    Cometbox\Native\close_all(); // each case on its own connection: the plan stays in step
}
$node->stop();
ksort($kinds);
printf("%d answers, %d NetworkExceptions of kinds %s\n", $answers, $errors, implode(',', array_keys($kinds)));
var_dump($answers + $errors, $answers > 20, $errors > 100);
?>
--EXPECTF--
%d answers, %d NetworkExceptions of kinds %s
int(300)
bool(true)
bool(true)
