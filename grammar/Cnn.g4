// Cnn.g4: the grammar of .cnn files, the network description language of cnnc.
//
// A file is a list of imports followed by block and network declarations. Statements inside a
// body are separated by newlines or ';' (both optional: the grammar needs no separator). The
// meaning of each construct is in docs/language.md; this file only fixes the syntax.
grammar Cnn;

file        : importDecl* topDecl* EOF ;
importDecl  : 'import' STRING ';'? ;
topDecl     : blockDecl | networkDecl | letStmt ;

blockDecl   : 'block' ID '(' paramList? ')' body ;
networkDecl : 'network' ID ('(' paramList? ')')? body ;
paramList   : param (',' param)* ','? ;
param       : ID ('=' expr)? ;

body        : '{' stmt* '}' ;

stmt
    : letStmt                                              # stmtLet
    | 'if' expr body elseClause? ';'?                      # stmtIf
    | 'for' ID 'in' expr body ';'?                         # stmtFor
    | 'residual' body ('shortcut' body)? ';'?              # stmtResidual
    | 'concat' body ';'?                                   # stmtConcat
    | 'add' body ';'?                                      # stmtAdd
    | 'mul' body ';'?                                      # stmtMul
    | 'split' body ';'?                                    # stmtSplit
    | 'use' call ';'?                                      # stmtUse
    | 'keep' ID ';'?                                       # stmtKeep
    | 'from' ID ';'?                                       # stmtFrom
    | 'recipe' '{' recipeField* '}' ';'?                   # stmtRecipe
    | (label=labelName ':')? unit ('*' count=expr)? ';'?   # stmtUnit
    ;
// A label is a module name; PyTorch models use words such as `shortcut` for modules, so the
// construct keywords are allowed here (a following ':' tells them apart). A string is a template
// whose `{expr}` parts are parsed by the AST builder (parser.cpp).
labelName   : STRING | ID | 'shortcut' | 'residual' | 'concat' | 'add' | 'mul' | 'split' | 'seq' | 'use' | 'in' | 'block' | 'keep' | 'from' | 'recipe' ;
// A training recipe's `key = value` (the keys are common/recipe.h's).
recipeField : ID '=' expr ';'? ;
elseClause  : 'else' (body | ifChain=stmt) ;
letStmt     : 'let' ID '=' expr ';'? ;

unit        : 'seq' body                                   # unitSeq
            | call                                         # unitCall
            ;
call        : ID ('(' argList? ')')? ;
argList     : arg (',' arg)* ','? ;
arg         : (ID '=')? expr ;

expr
    : '(' expr ')'                                         # exprParen
    | expr '[' expr ']'                                    # exprIndex
    | expr '.' ID                                          # exprMember
    | op=('-' | '!') expr                                  # exprUnary
    | expr op=('*' | '/' | '%') expr                       # exprBinary
    | expr op=('+' | '-') expr                             # exprBinary
    | expr op=('<' | '<=' | '>' | '>=') expr               # exprBinary
    | expr op=('==' | '!=') expr                           # exprBinary
    | expr op='&&' expr                                    # exprBinary
    | expr op='||' expr                                    # exprBinary
    | <assoc=right> expr '?' expr ':' expr                 # exprCond
    | ID '(' (expr (',' expr)*)? ')'                       # exprCall
    | '[' (expr (',' expr)* ','?)? ']'                     # exprList
    | INT                                                  # exprInt
    | FLOAT                                                # exprFloat
    | STRING                                               # exprString
    | ('true' | 'false')                                   # exprBool
    | 'in'                                                 # exprIn
    | ID                                                   # exprName
    ;

INT         : [0-9]+ ;
FLOAT       : [0-9]+ '.' [0-9]* EXPONENT? | '.' [0-9]+ EXPONENT? | [0-9]+ EXPONENT ;
fragment EXPONENT : [eE] [+-]? [0-9]+ ;
STRING      : '"' (~["\\\r\n] | '\\' .)* '"' ;
// Unterminated forms become tokens of their own so the error can say what is wrong.
UNTERMINATED_STRING : '"' (~["\\\r\n] | '\\' .)* ;
ID          : [a-zA-Z_] [a-zA-Z_0-9]* ;
COMMENT     : '#' ~[\r\n]* -> skip ;
LINE_COMMENT: '//' ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
UNTERMINATED_COMMENT : '/*' ( ~[*] | '*'+ ~[*/] )* '*'* EOF ;
WS          : [ \t\r\n]+ -> skip ;
// Any other character becomes a token the parser rejects, so the error points at it.
ERRCHAR     : . ;
