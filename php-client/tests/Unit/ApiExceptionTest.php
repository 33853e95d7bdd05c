<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\ApiException;
use Cometbox\Transport\Response;
use PHPUnit\Framework\TestCase;

/**
 * Error answers, in the node's XML and JSON bodies and from elsewhere,
 * turned into ApiException.
 */
final class ApiExceptionTest extends TestCase
{
    private const NODE = 'http://n1:8080';

    public function testXmlErrorBody(): void
    {
        // As the node writes it: Go's xml.EscapeText turns quotes into &#34;.
        $body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error code=\"invalid_client\">message 1 on line 1: attribute &#34;to&#34;: client &#34;a b&#34;: want 1 to 128 characters of A-Z a-z 0-9 _ . : @ -: invalid client id</error>\n";
        $e = ApiException::fromResponse(self::NODE, new Response(400, ['Content-Type' => 'application/xml; charset=utf-8'], $body));

        self::assertSame(400, $e->getStatus());
        self::assertSame('invalid_client', $e->getErrorCode());
        self::assertSame('message 1 on line 1: attribute "to": client "a b": want 1 to 128 characters of A-Z a-z 0-9 _ . : @ -: invalid client id', $e->getExplanation());
        self::assertSame(self::NODE, $e->getNode());
        self::assertStringStartsWith('cometbox node http://n1:8080 answered 400 invalid_client: message 1 on line 1: attribute "to"', $e->getMessage());
    }

    public function testXmlEntitiesAndMarkupInTheExplanation(): void
    {
        $body = '<error code="invalid_message">message 2 on line 3: element &lt;b&gt; inside &lt;message&gt; &amp; more</error>';
        $e = ApiException::fromResponse(self::NODE, new Response(400, [], $body));

        self::assertSame('message 2 on line 3: element <b> inside <message> & more', $e->getExplanation());
    }

    public function testJsonErrorBody(): void
    {
        $body = '{"error":{"code":"message_too_large","message":"messages[0].data: over 1024 bytes: message too large"}}' . "\n";
        $e = ApiException::fromResponse(self::NODE, new Response(413, ['Content-Type' => 'application/json'], $body));

        self::assertSame(413, $e->getCode());
        self::assertSame('message_too_large', $e->getErrorCode());
        self::assertSame('messages[0].data: over 1024 bytes: message too large', $e->getExplanation());
        self::assertNull($e->getRetryAfter());
    }

    public function testRetryAfterIsKept(): void
    {
        $body = '{"error":{"code":"unavailable","message":"the message store is unavailable; retry shortly"}}';
        $e = ApiException::fromResponse(self::NODE, new Response(503, ['Retry-After' => '4'], $body));

        self::assertSame('unavailable', $e->getErrorCode());
        self::assertSame(4, $e->getRetryAfter());
    }

    /** @return iterable<string, array{Response, string}> */
    public function foreignAnswers(): iterable
    {
        yield 'plain text from the HTTP server' => [new Response(431, [], "431 Request Header Fields Too Large\n"), '431 Request Header Fields Too Large'];
        yield 'an HTML proxy page' => [new Response(502, [], "<html>\n<body>Bad   Gateway</body></html>"), '<html> <body>Bad Gateway</body></html>'];
        yield 'JSON of another shape' => [new Response(400, [], '{"message":"nope"}'), '{"message":"nope"}'];
        yield 'empty' => [new Response(500, [], ''), '(empty body)'];
        yield 'long' => [new Response(500, [], str_repeat('x', 500)), str_repeat('x', 200) . '...'];
    }

    /**
     * @dataProvider foreignAnswers
     */
    public function testAnswersFromElsewhereHaveNoCode(Response $answer, string $explanation): void
    {
        $e = ApiException::fromResponse(self::NODE, $answer);

        self::assertSame('', $e->getErrorCode());
        self::assertSame($explanation, $e->getExplanation());
        self::assertSame(sprintf('cometbox node %s answered %d: %s', self::NODE, $answer->status(), $explanation), $e->getMessage());
    }
}
