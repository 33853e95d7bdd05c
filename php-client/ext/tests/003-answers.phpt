--TEST--
cometbox: answers framed every way HTTP/1.1 allows, on one kept connection when the node keeps it
--EXTENSIONS--
cometbox
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
$chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n";
$node = FakeNode::start([
    ['answer' => FakeNode::ok('<queued/>', ['Set-Cookie: a=1', 'Set-Cookie: b=2', 'X-Empty:', '123: numeric name'])],
    ['answer' => $chunked],
    ['answer' => $chunked, 'pieces' => 40],
    ['answer' => "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" . FakeNode::ok('after interim')],
    ['answer' => "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"],
    ['answer' => "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 11\r\n\r\nunavailable"],
    ['answer' => "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"], // to HEAD: the length, no body
    ['answer' => "HTTP/1.1 200 OK\nContent-Length: 3\n\nlf!"],
    ['answer' => "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nConnection: keep-alive, close\r\n\r\nclose"],
    ['answer' => "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nhttp"],
    ['answer' => "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nka"],
    ['answer' => "HTTP/1.1 200 OK\r\n\r\nuntil the end", 'then' => 'close'],
    ['answer' => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
    ['answer' => FakeNode::ok('last')],
]);
$u = $node->url . '/publish';
$before = Cometbox\Native\stats();
for ($i = 0; $i < 14; $i++) {
    show(fn () => Cometbox\Native\request($i === 6 ? 'HEAD' : 'POST', $u, ['Idempotency-Key' => "k$i"], 'x'));
    $s = Cometbox\Native\stats();
    echo "  opened ", $s['connections_opened'] - $before['connections_opened'], ", open ", $s['open'], "\n";
}
$conns = array_count_values(array_column($node->requests(), 'conn'));
echo count($node->requests()), " requests on ", count($conns), " connections\n";
$node->stop();
?>
--EXPECT--
200 {"content-type":"application\/xml","set-cookie":"a=1, b=2","x-empty":"","123":"numeric name","content-length":"9"} "<queued\/>"
  opened 1, open 1
200 {"transfer-encoding":"chunked"} "hello world"
  opened 1, open 1
200 {"transfer-encoding":"chunked"} "hello world"
  opened 1, open 1
200 {"content-type":"application\/xml","content-length":"13"} "after interim"
  opened 1, open 1
204 {"x-a":"b"} ""
  opened 1, open 1
503 {"retry-after":"3","content-length":"11"} "unavailable"
  opened 1, open 1
200 {"content-length":"4"} ""
  opened 1, open 1
200 {"content-length":"3"} "lf!"
  opened 1, open 1
200 {"content-length":"5, 5","connection":"keep-alive, close"} "close"
  opened 1, open 0
200 {"content-length":"4"} "http"
  opened 2, open 0
200 {"connection":"Keep-Alive","content-length":"2"} "ka"
  opened 3, open 1
200 [] "until the end"
  opened 3, open 0
200 {"transfer-encoding":"chunked","content-length":"99"} "abc"
  opened 4, open 0
200 {"content-type":"application\/xml","content-length":"4"} "last"
  opened 5, open 1
14 requests on 5 connections
