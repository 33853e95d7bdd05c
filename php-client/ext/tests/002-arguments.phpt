--TEST--
cometbox: bad arguments are ValueErrors, a URL that is not http(s) a NetworkException, and nothing is sent
--EXTENSIONS--
cometbox
--FILE--
<?php
require __DIR__ . '/fake_node_client.inc';
$node = FakeNode::start([['answer' => FakeNode::ok('ok')]]);
$u = $node->url . '/publish';
show(fn () => Cometbox\Native\request('', $u));
show(fn () => Cometbox\Native\request("POST /x HTTP/1.1\r\n", $u));
show(fn () => Cometbox\Native\request('POST', $u, ['X-A' => "a\r\nInjected: yes"]));
show(fn () => Cometbox\Native\request('POST', $u, ['X-A' => "a\0b"]));
show(fn () => Cometbox\Native\request('POST', $u, ['Bad Name' => 'x']));
show(fn () => Cometbox\Native\request('POST', $u, ['x']));
show(fn () => Cometbox\Native\request('POST', $u, ['Host' => 'evil']));
show(fn () => Cometbox\Native\request('POST', $u, ['content-length' => '3']));
show(fn () => Cometbox\Native\request('POST', $u, ['X-A' => []]));
show(fn () => Cometbox\Native\request('POST', $u, [], '', 0.0));
show(fn () => Cometbox\Native\request('POST', $u, [], '', NAN));
show(fn () => Cometbox\Native\request('POST', $u, [], '', 1.0, -1.0));
show(fn () => Cometbox\Native\request('POST', 'ftp://127.0.0.1/x'));
show(fn () => Cometbox\Native\request('POST', '/publish'));
show(fn () => Cometbox\Native\request('POST', 'http://user:pw@127.0.0.1/x'));
show(fn () => Cometbox\Native\request('POST', 'http://127.0.0.1/x#frag'));
show(fn () => Cometbox\Native\request('POST', "http://127.0.0.1/x\r\nHost: y"));
var_dump(count($node->requests()));
show(fn () => Cometbox\Native\request('POST', $u, ['X-Number' => 7, 'X-Empty' => ''], 'body'));
$got = $node->requests();
var_dump(count($got), $got[0]['line'], $got[0]['headers']['x-number'], $got[0]['headers']['x-empty'], $got[0]['headers']['content-length'], $got[0]['body']);
$node->stop();
?>
--EXPECT--
ValueError: Cometbox\Native\request(): Argument #1 ($method) must be an HTTP method token, like "POST"
ValueError: Cometbox\Native\request(): Argument #1 ($method) must be an HTTP method token, like "POST"
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must not hold CR, LF or NUL in a value; X-A does
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must not hold CR, LF or NUL in a value; X-A does
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must map header names (tokens) to values; got the key "Bad Name"
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must map header names to values; got the integer key 0
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must not hold Host: the transport writes it
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must not hold content-length: the transport writes it
ValueError: Cometbox\Native\request(): Argument #3 ($headers) must hold string values; X-A is array
ValueError: Cometbox\Native\request(): Argument #5 ($timeout) must be a number of seconds above 0
ValueError: Cometbox\Native\request(): Argument #5 ($timeout) must be a number of seconds above 0
ValueError: Cometbox\Native\request(): Argument #6 ($connectTimeout) must be a number of seconds above 0
NetworkException PROTOCOL: POST ftp://127.0.0.1/x: not an absolute http(s) URL (timeout 2s)
NetworkException PROTOCOL: POST /publish: not an absolute http(s) URL (timeout 2s)
NetworkException PROTOCOL: POST http://user:pw@127.0.0.1/x: not an absolute http(s) URL (timeout 2s)
NetworkException PROTOCOL: POST http://127.0.0.1/x#frag: not an absolute http(s) URL (timeout 2s)
NetworkException PROTOCOL: POST http://127.0.0.1/x
Host: y: not an absolute http(s) URL (timeout 2s)
int(0)
200 {"content-type":"application\/xml","content-length":"2"} "ok"
int(1)
string(22) "POST /publish HTTP/1.1"
string(1) "7"
string(0) ""
string(1) "4"
string(4) "body"
